//! How the page writes numbers and missing values: megabytes, scores ×100, rank distances, and the
//! dash of a missing value. Shared by every panel, so one table never writes a number two ways.

use mlr_eval::lareqa::SettingScore;

/// Bytes in MB (10^6 bytes, as the README and `mlr demo build` count), one decimal.
pub(crate) fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

/// A share in 0–1 as a score ×100, one decimal.
pub(crate) fn hundred(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

/// The mark of a missing value.
pub(crate) fn dash() -> String {
    "–".to_string()
}

/// mAP ×100 of a setting, or a dash.
pub(crate) fn map_cell(score: Option<&SettingScore>) -> String {
    score.map_or_else(dash, |s| hundred(s.map))
}

/// Recall@k ×100 of a setting, or a dash.
pub(crate) fn recall_cell(score: Option<&SettingScore>, k: usize) -> String {
    score.and_then(|s| s.recall.get(&k)).map_or_else(dash, |&r| hundred(r))
}

/// A rank distance, one decimal, or a dash.
pub(crate) fn distance_cell(distance: Option<f64>) -> String {
    distance.map_or_else(dash, |d| format!("{d:.1}"))
}
