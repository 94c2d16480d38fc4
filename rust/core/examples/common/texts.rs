//! Input shared by the stage examples.

/// The `text` fields of a JSONL file, in order, up to the first that takes the total past `mb`
/// megabytes; and that total in bytes.
pub fn read_texts(path: &str, mb: f64) -> (Vec<String>, usize) {
    let data = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut texts = Vec::new();
    let mut bytes = 0;
    for line in data.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = v["text"].as_str().unwrap().to_string();
        bytes += t.len();
        texts.push(t);
        if bytes as f64 > mb * 1e6 {
            break;
        }
    }
    (texts, bytes)
}
