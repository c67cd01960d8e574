//! Pretrained decoder transformers with a scalar head: the Llama family (`llama.rs`, its
//! `config.json` in `llama_config.rs`), loaded by Hugging Face tensor names from a checkpoint
//! directory (`weights.rs`) or a GGUF file (`gguf.rs`).

pub mod gguf;
pub mod gguf_llama;
pub mod llama;
pub mod llama_config;
pub mod weights;

pub use llama::Llama;
pub use llama_config::{Family, LlamaConfig};
