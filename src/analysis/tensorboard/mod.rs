//! TensorBoard event files of rmlab runs, so that they sit beside other runs (TRL's) in one
//! TensorBoard.

pub mod event_file;
pub mod proto;
