//! The vendored preference sets are what data/preferences/manifest.json says: the same bytes
//! (SHA-256), rows and prompts, each with its licence file beside it.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;

use sha2::{Digest, Sha256};

#[test]
fn manifest_matches_the_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/preferences");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), 4);
    for f in files {
        let name = f["file"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sha, f["sha256"].as_str().unwrap(), "{name}: SHA-256");
        let (mut rows, mut prompts) = (0, HashSet::new());
        for line in BufReader::new(flate2::read::GzDecoder::new(&bytes[..])).lines() {
            let row: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
            prompts.insert(row["prompt"].as_str().unwrap().to_string());
            rows += 1;
        }
        assert_eq!(rows, f["rows"].as_u64().unwrap(), "{name}: rows");
        assert_eq!(prompts.len() as u64, f["prompts"].as_u64().unwrap(), "{name}: prompts");
        let licence = dir.join(f["licence_file"].as_str().unwrap());
        assert!(std::fs::metadata(&licence).unwrap().len() > 500, "{}", licence.display());
    }
}
