//! One labelled comparison of two responses.

/// One comparison: response `chosen` was preferred over `rejected` (indices into responses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair {
    pub chosen: usize,
    pub rejected: usize,
}
