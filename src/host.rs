//! Host-memory views of CPU tensors, for the few loops that cost less than the kernels they
//! replace (small per-step updates, row gathers) on the CPU.

use tch::{Device, Kind, Tensor};

/// Whether `t` is a contiguous CPU tensor of `kind`.
pub fn is_host(t: &Tensor, kind: Kind) -> bool {
    t.device() == Device::Cpu && t.kind() == kind && t.is_contiguous()
}

/// The float32 elements of a contiguous float32 CPU tensor, writable; `None` otherwise.
///
/// # Safety
/// While the slice lives, nothing else reads or writes `t`'s elements (no other slice of it,
/// no LibTorch operation on it or on a view of it).
#[allow(clippy::mut_from_ref)]
pub unsafe fn f32s_mut(t: &Tensor) -> Option<&mut [f32]> {
    is_host(t, Kind::Float)
        .then(|| unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, t.numel()) })
}

/// The float32 elements of a contiguous float32 CPU tensor; `None` otherwise.
///
/// # Safety
/// Nothing writes `t`'s elements while the slice lives.
pub unsafe fn f32s(t: &Tensor) -> Option<&[f32]> {
    is_host(t, Kind::Float)
        .then(|| unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, t.numel()) })
}

/// The int64 elements of a contiguous int64 CPU tensor; `None` otherwise.
///
/// # Safety
/// Nothing writes `t`'s elements while the slice lives.
pub unsafe fn i64s(t: &Tensor) -> Option<&[i64]> {
    is_host(t, Kind::Int64)
        .then(|| unsafe { std::slice::from_raw_parts(t.data_ptr() as *const i64, t.numel()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_see_the_tensor_and_refuse_other_layouts() {
        let t = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([2, 2]);
        // SAFETY: no other access to `t` while `s` lives.
        let s = unsafe { f32s_mut(&t) }.unwrap();
        s[3] = 9.0;
        assert_eq!(t.double_value(&[1, 1]), 9.0);
        let (transposed, double) = (t.tr(), t.to_kind(Kind::Double));
        assert!(unsafe { f32s_mut(&transposed) }.is_none(), "a transposed view is not contiguous");
        assert!(unsafe { f32s_mut(&double) }.is_none());
        // A row of a contiguous tensor starts at its own offset.
        let row = Tensor::from_slice(&[5i64, 6, 7, 8]).view([2, 2]).get(1);
        assert_eq!(unsafe { i64s(&row) }.unwrap(), &[7, 8]);
    }
}
