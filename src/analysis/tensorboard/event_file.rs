//! TensorBoard event files: TFRecord framing of `tensorboard.Event` messages.
//!
//! A record is the data's length as a little-endian u64, the masked CRC-32C of those 8 bytes
//! (little-endian u32), the data, and the data's masked CRC-32C. A file's first record is the
//! event that names its version, `brain.Event:2`; TensorBoard reads every file whose name holds
//! `tfevents` in a run's directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use prost::Message;

use super::proto::{
    Event, HParamsData, HParamsPluginData, PluginData, SessionEndInfo, SessionStartInfo, Status, Summary,
    SummaryMetadata, SummaryValue, TensorDim, TensorProto, TensorShape, ValueKind, What,
};
use crate::error::{Error, Result};

/// The masked CRC-32C (Castagnoli) of `bytes`, as TFRecord stores it: the checksum rotated
/// right by 15 bits plus 0xa282ead8 (mod 2³²), so that a CRC of data holding CRCs is not
/// degenerate.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord: length, its masked CRC, `data`, its masked CRC.
pub fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

/// The first event of a file.
pub fn file_version(wall_time: f64) -> Event {
    Event { wall_time, step: 0, what: Some(What::FileVersion("brain.Event:2".into())) }
}

/// Scalars at `step`, each `(tag, value)` as a `simple_value` (float32: TensorBoard's scalars
/// are single precision).
pub fn scalars(wall_time: f64, step: i64, values: impl IntoIterator<Item = (String, f32)>) -> Event {
    let value = values
        .into_iter()
        .map(|(tag, v)| SummaryValue { tag, metadata: None, value: Some(ValueKind::SimpleValue(v)) })
        .collect();
    Event { wall_time, step, what: Some(What::Summary(Summary { value })) }
}

/// An `hparams` plugin summary holding `data`, under the tag TensorBoard's hparams plugin
/// reads it by, with the empty float tensor the plugin's own writer puts beside its metadata.
fn hparams_event(wall_time: f64, step: i64, tag: &str, data: HParamsData) -> Event {
    let content = HParamsPluginData { version: 0, data: Some(data) }.encode_to_vec();
    let value = SummaryValue {
        tag: tag.into(),
        metadata: Some(SummaryMetadata {
            plugin_data: Some(PluginData { plugin_name: "hparams".into(), content }),
        }),
        value: Some(ValueKind::Tensor(TensorProto {
            dtype: 1,
            tensor_shape: Some(TensorShape { dim: vec![TensorDim { size: 0 }] }),
        })),
    };
    Event { wall_time, step, what: Some(What::Summary(Summary { value: vec![value] })) }
}

/// The start of a session: its hyperparameters, its group and when it started.
pub fn session_start(wall_time: f64, info: SessionStartInfo) -> Event {
    hparams_event(wall_time, 0, "_hparams_/session_start_info", HParamsData::SessionStartInfo(info))
}

/// The end of a session, written at its last step.
pub fn session_end(wall_time: f64, step: i64, status: Status) -> Event {
    let info = SessionEndInfo { status: status as i32, end_time_secs: wall_time };
    hparams_event(wall_time, step, "_hparams_/session_end_info", HParamsData::SessionEndInfo(info))
}

/// Seconds since the Unix epoch, now.
pub fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// An event file being written. Events are buffered; [`EventFile::flush`] makes those written
/// so far readable (TensorBoard follows a growing file).
#[derive(Debug)]
pub struct EventFile {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
}

impl EventFile {
    /// Creates the file at `path` (its directory must exist) and writes the version record.
    pub fn create(path: &Path, wall_time: f64) -> Result<EventFile> {
        let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        let mut f = EventFile { path: path.to_path_buf(), out: std::io::BufWriter::new(file) };
        f.write(&file_version(wall_time))?;
        Ok(f)
    }

    pub fn write(&mut self, event: &Event) -> Result<()> {
        self.out.write_all(&frame(&event.encode_to_vec())).map_err(|e| Error::io(&self.path, e))
    }

    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }

    /// Flushes and syncs the file to disk.
    pub fn close(mut self) -> Result<()> {
        self.flush()?;
        self.out.get_ref().sync_all().map_err(|e| Error::io(&self.path, e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The events of a file's bytes, checking every record's lengths and checksums (for tests and
/// for reading back what was written).
pub fn read_events(bytes: &[u8]) -> std::result::Result<Vec<Event>, String> {
    let mut events = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < 12 {
            return Err(format!("a truncated record header of {} bytes", rest.len()));
        }
        let (len_bytes, after) = rest.split_at(8);
        let stored = u32::from_le_bytes(after[..4].try_into().expect("4 bytes"));
        if stored != masked_crc32c(len_bytes) {
            return Err("the length's checksum does not match".into());
        }
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes")) as usize;
        let after = &after[4..];
        if after.len() < len.saturating_add(4) {
            return Err(format!("a record of {len} bytes truncated to {}", after.len()));
        }
        let (data, after) = after.split_at(len);
        let stored = u32::from_le_bytes(after[..4].try_into().expect("4 bytes"));
        if stored != masked_crc32c(data) {
            return Err("a record's checksum does not match".into());
        }
        events.push(Event::decode(data).map_err(|e| format!("not an Event: {e}"))?);
        rest = &after[4..];
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC-32C check values from RFC 3720 (iSCSI), appendix B.4, and the catalogue's check
    /// value of "123456789"; the masks worked by hand from them.
    #[test]
    fn the_checksum_is_crc32c_masked_as_tfrecord_masks_it() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c::crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        // 0xe3069283 rotated right by 15 bits is 0x2507c60d; plus 0xa282ead8 is 0xc78ab0e5.
        assert_eq!(masked_crc32c(b"123456789"), 0xc78a_b0e5);
        // 0x8a9136aa rotated right by 15 is 0x6d55_1522; plus the mask constant, 0x0fd7_fffa.
        assert_eq!(masked_crc32c(&[0u8; 32]), 0x0fd7_fffa);
    }

    /// The framing of a known record, byte by byte: 3 bytes "abc".
    #[test]
    fn a_record_is_length_crc_data_crc() {
        let r = frame(b"abc");
        assert_eq!(r.len(), 8 + 4 + 3 + 4);
        assert_eq!(&r[..8], &[3, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&r[8..12], &masked_crc32c(&[3, 0, 0, 0, 0, 0, 0, 0]).to_le_bytes());
        assert_eq!(&r[12..15], b"abc");
        assert_eq!(&r[15..], &masked_crc32c(b"abc").to_le_bytes());
        // crc32c("abc") = 0x364b3fb7 (the reference software implementation).
        assert_eq!(crc32c::crc32c(b"abc"), 0x364b_3fb7);
    }

    /// `brain.Event:2` at wall time 1.5 encodes as protobuf says: field 1 (double, tag byte 0x09)
    /// then field 3 (length-delimited, tag byte 0x1a); step 0 is left out.
    #[test]
    fn the_version_event_encodes_field_by_field() {
        let bytes = file_version(1.5).encode_to_vec();
        let mut expected = vec![0x09];
        expected.extend_from_slice(&1.5f64.to_le_bytes());
        expected.extend_from_slice(&[0x1a, 13]);
        expected.extend_from_slice(b"brain.Event:2");
        assert_eq!(bytes, expected);
    }

    #[test]
    fn written_events_read_back_and_damage_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.out.tfevents.test");
        let mut f = EventFile::create(&path, 10.0).unwrap();
        let e = scalars(11.0, 20, [("val/accuracy".to_string(), 0.75f32)]);
        f.write(&e).unwrap();
        f.close().unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let events = read_events(&bytes).unwrap();
        assert_eq!(events, vec![file_version(10.0), e]);
        let last = bytes.len() - 6;
        bytes[last] ^= 1;
        assert!(read_events(&bytes).unwrap_err().contains("checksum"));
        assert!(read_events(&bytes[..bytes.len() - 2]).unwrap_err().contains("truncated"));
    }
}
