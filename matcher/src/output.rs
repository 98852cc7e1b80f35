//! The JSON-lines contract of `likeness-matcher analyze`: one object per file, in argument
//! order: `{"file", "width", "height", "faces": [{"box", "landmarks", "score", "quality",
//! "embedding"?}], "error": null | "message", "error_kind": null | "kind"}`.

use likeness_models::{Face, ImageErrorKind, Quality};
use serde::Serialize;

/// One face in the CLI output.
#[derive(Debug, Serialize)]
pub struct FaceJson {
    /// `[x1, y1, x2, y2]` in pixels of the oriented image.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Five `[x, y]` landmarks.
    pub landmarks: [[f32; 2]; 5],
    /// Detector score.
    pub score: f32,
    /// Quality flags.
    pub quality: Quality,
    /// L2-normalised embedding (with `--embeddings`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

/// One file in the CLI output.
#[derive(Debug, Serialize)]
pub struct FileJson {
    /// The path as given.
    pub file: String,
    /// Width after EXIF orientation (0 on error).
    pub width: u32,
    /// Height after EXIF orientation (0 on error).
    pub height: u32,
    /// Faces found.
    pub faces: Vec<FaceJson>,
    /// Why the file failed, or null.
    pub error: Option<String>,
    /// Machine-readable kind of the failure, or null.
    pub error_kind: Option<ImageErrorKind>,
}

impl FileJson {
    /// A successful file.
    pub fn ok(file: String, width: u32, height: u32, faces: Vec<Face>, embeddings: bool) -> Self {
        Self {
            file,
            width,
            height,
            faces: faces
                .into_iter()
                .map(|f| FaceJson {
                    bbox: f.detection.bbox,
                    landmarks: f.detection.landmarks,
                    score: f.detection.score,
                    quality: f.quality,
                    embedding: embeddings.then_some(f.embedding),
                })
                .collect(),
            error: None,
            error_kind: None,
        }
    }

    /// Converts a gRPC result to the same JSON shape.
    pub fn from_pb(
        file: String,
        r: likeness_proto::matcher_v1::ImageResult,
        embeddings: bool,
    ) -> Self {
        use likeness_proto::matcher_v1::ErrorKind;
        if let Some(e) = r.error {
            let kind = match ErrorKind::try_from(e.kind) {
                Ok(ErrorKind::Empty) => ImageErrorKind::Empty,
                Ok(ErrorKind::TooLarge) => ImageErrorKind::TooLarge,
                Ok(ErrorKind::UnsupportedFormat) => ImageErrorKind::UnsupportedFormat,
                Ok(ErrorKind::Corrupt) => ImageErrorKind::Corrupt,
                Ok(ErrorKind::LimitsExceeded) => ImageErrorKind::LimitsExceeded,
                _ => ImageErrorKind::Internal,
            };
            return Self::failed(file, kind, e.message);
        }
        let faces = r
            .faces
            .into_iter()
            .map(|f| {
                let b = f.r#box.unwrap_or_default();
                let mut landmarks = [[0f32; 2]; 5];
                for (l, p) in landmarks.iter_mut().zip(&f.landmarks) {
                    *l = [p.x, p.y];
                }
                let q = f.quality.unwrap_or_default();
                FaceJson {
                    bbox: [b.x1, b.y1, b.x2, b.y2],
                    landmarks,
                    score: f.score,
                    quality: Quality {
                        face_size: q.face_size,
                        sharpness: q.sharpness,
                        too_small: q.too_small,
                        too_blurry: q.too_blurry,
                        identifiable: q.identifiable,
                    },
                    embedding: embeddings.then_some(f.embedding),
                }
            })
            .collect();
        Self {
            file,
            width: r.width,
            height: r.height,
            faces,
            error: None,
            error_kind: None,
        }
    }

    /// A failed file.
    pub fn failed(file: String, kind: ImageErrorKind, message: String) -> Self {
        Self {
            file,
            width: 0,
            height: 0,
            faces: Vec::new(),
            error: Some(message),
            error_kind: Some(kind),
        }
    }
}
