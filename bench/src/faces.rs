//! Face helpers shared by the benchmarks: the largest face of a file, and FaceScrub identities.

use std::path::Path;
use std::time::Instant;

use likeness_models::{Pipeline, StageTimings};

/// The embedding of the largest face of an image.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// L2-normalised embedding.
    pub embedding: Vec<f32>,
    /// Faces found in the image.
    pub faces: usize,
}

/// Runs the pipeline on one file and keeps the largest face (ties: the higher score).
pub fn embed_file(
    p: &Pipeline,
    path: &Path,
    timings: &mut StageTimings,
) -> Result<Option<Embedded>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let t = Instant::now();
    let img = p.decode(&bytes).map_err(|e| e.to_string())?;
    timings.decode += t.elapsed();
    let faces = p
        .analyze(&[&img], None, timings)
        .pop()
        .unwrap_or_else(|| Ok(Vec::new()))
        .map_err(|e| e.to_string())?;
    let n = faces.len();
    let best = faces.into_iter().max_by(|a, b| {
        let area = |f: &likeness_models::Face| f.detection.width() * f.detection.height();
        area(a)
            .total_cmp(&area(b))
            .then(a.detection.score.total_cmp(&b.detection.score))
    });
    Ok(best.map(|f| Embedded {
        embedding: f.embedding,
        faces: n,
    }))
}

/// Identity of a FaceScrub crop: `First_Last_<id>_crop.jpg` -> `First_Last`.
pub fn identity(file: &str) -> Option<&str> {
    let stem = file.strip_suffix("_crop.jpg")?;
    let (name, id) = stem.rsplit_once('_')?;
    id.chars().all(|c| c.is_ascii_digit()).then_some(name)
}
