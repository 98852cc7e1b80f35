//! The model manifest: every model Likeness can load, with its sha256, licence, source and
//! preprocessing. A file is only loaded when its hash matches the entry.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// What a model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Face detector (boxes, 5 landmarks, score).
    Detector(DetectorFamily),
    /// Face embedder (aligned 112x112 crop to a vector).
    Embedder {
        /// Embedding dimension.
        dim: usize,
    },
}

impl Role {
    /// "detector" or "embedder".
    pub fn name(self) -> &'static str {
        match self {
            Self::Detector(_) => "detector",
            Self::Embedder { .. } => "embedder",
        }
    }
}

/// Output decoding family of a detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectorFamily {
    /// YuNet: BGR 0..255 input, cls/obj/bbox/kps outputs per stride, one prior per cell.
    YuNet,
    /// SCRFD: RGB (x-127.5)/128 input, score/bbox/kps per stride, two anchors per cell.
    Scrfd,
}

/// One manifest entry.
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec {
    /// Stable id used in configuration.
    pub id: &'static str,
    /// File name in the models directory.
    pub file: &'static str,
    /// Expected sha256 of the file (lower-case hex).
    pub sha256: &'static str,
    /// What the model does.
    pub role: Role,
    /// Licence of the weights.
    pub licence: &'static str,
    /// Whether the licence allows commercial use.
    pub commercial_use: bool,
    /// Where to download the file.
    pub source_url: &'static str,
    /// Fixed input size (width, height) if the model has one; `None` for dynamic spatial input.
    pub fixed_input: Option<(u32, u32)>,
    /// Whether the batch axis is dynamic.
    pub dynamic_batch: bool,
    /// Preprocessing, in words.
    pub preprocessing: &'static str,
    /// How a derived model is made from a downloaded one (`None`: the file is downloaded).
    /// Derived files live in the derived-models directory (`PipelineConfig::derived_models_dir`)
    /// and are made by `bash deploy/quantize-models.sh`.
    pub made_by: Option<&'static str>,
}

impl ModelSpec {
    /// Whether the file is made by this repository (`made_by`) rather than downloaded.
    pub fn is_derived(&self) -> bool {
        self.made_by.is_some()
    }
}

/// What makes the derived models.
pub const DERIVE_COMMAND: &str = "bash deploy/quantize-models.sh";

/// Every model Likeness knows.
pub const MODELS: &[ModelSpec] = &[
    ModelSpec {
        id: "yunet_s_640",
        file: "yunet_s_640_640.onnx",
        sha256: "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
        role: Role::Detector(DetectorFamily::YuNet),
        licence: "Apache-2.0",
        commercial_use: true,
        source_url: "https://github.com/ShiqiYu/libfacedetection.train/raw/0047ac24afb1a50a0c6105001c89d1b5b805dbf1/onnx/yunet_s_640_640.onnx",
        fixed_input: Some((640, 640)),
        dynamic_batch: false,
        preprocessing: "letterbox to 640x640 (top-left, zero pad), BGR, float32 0..255, NCHW",
        made_by: None,
    },
    ModelSpec {
        id: "yunet_s",
        file: "yunet_s_dynamic.onnx",
        sha256: "daede24002cc8590f457998cc5e6c9e8b82f45f6bd969506a8913cd4ed10a2d3",
        role: Role::Detector(DetectorFamily::YuNet),
        licence: "Apache-2.0",
        commercial_use: true,
        source_url: "https://github.com/ShiqiYu/libfacedetection.train/raw/0047ac24afb1a50a0c6105001c89d1b5b805dbf1/onnx/yunet_s_dynamic.onnx",
        fixed_input: None,
        dynamic_batch: true,
        preprocessing: "letterbox (top-left, zero pad; H, W multiples of 32), BGR, float32 0..255, NCHW",
        made_by: None,
    },
    ModelSpec {
        id: "yunet_n",
        file: "yunet_n_dynamic.onnx",
        sha256: "104ee26c71d5c270ce79a6b3dced91c91013260d29a6bf18f9296c5b8c4c2b12",
        role: Role::Detector(DetectorFamily::YuNet),
        licence: "Apache-2.0",
        commercial_use: true,
        source_url: "https://github.com/ShiqiYu/libfacedetection.train/raw/0047ac24afb1a50a0c6105001c89d1b5b805dbf1/onnx/yunet_n_dynamic.onnx",
        fixed_input: None,
        dynamic_batch: true,
        preprocessing: "letterbox (top-left, zero pad; H, W multiples of 32), BGR, float32 0..255, NCHW",
        made_by: None,
    },
    ModelSpec {
        id: "scrfd_2.5g",
        file: "scrfd_2.5g_bnkps.onnx",
        sha256: "bc24bb349491481c3ca793cf89306723162c280cb284c5a5e49df3760bf5c2ce",
        role: Role::Detector(DetectorFamily::Scrfd),
        licence: "InsightFace pretrained weights: non-commercial research only",
        commercial_use: false,
        source_url: "https://github.com/darzhz/pixamatch/raw/7cc795413024ba57a193a8fa503968af09442a17/models/scrfd_2.5g_bnkps.onnx",
        fixed_input: None,
        dynamic_batch: false,
        preprocessing: "letterbox (top-left, zero pad; H, W multiples of 32), RGB, (x-127.5)/128, NCHW",
        made_by: None,
    },
    ModelSpec {
        id: "mobilefacenet_128",
        file: "mobilefacenet_128d_dynamic.onnx",
        sha256: "74c5a21f6fa4634dfb95ab6f21fcd5d9487500290c476d8df467713e21e5988a",
        role: Role::Embedder { dim: 128 },
        licence: "Apache-2.0 (trained on refined MS-Celeb-1M, a data set its publisher withdrew)",
        commercial_use: true,
        source_url: "https://github.com/foamliu/MobileFaceNet (weights/MobileFaceNet.onnx at a6cc9032a659b615f477833e1a70b5e7931bcccc, batch axis made dynamic)",
        fixed_input: Some((112, 112)),
        dynamic_batch: true,
        preprocessing: "5-point similarity alignment to the ArcFace 112x112 template, bilinear, zero border, RGB, (x-127.5)/127.5, NCHW",
        made_by: None,
    },
    ModelSpec {
        id: "mobilefacenet_128_b1",
        file: "mobilefacenet_128d_foamliu.onnx",
        sha256: "b7120c095d60094f28a4a54ba6a8bf51b297a6273fb40ef6350dfec1f63d9507",
        role: Role::Embedder { dim: 128 },
        licence: "Apache-2.0 (trained on refined MS-Celeb-1M, a data set its publisher withdrew)",
        commercial_use: true,
        source_url: "https://github.com/foamliu/MobileFaceNet/raw/a6cc9032a659b615f477833e1a70b5e7931bcccc/weights/MobileFaceNet.onnx",
        fixed_input: Some((112, 112)),
        dynamic_batch: false,
        preprocessing: "5-point similarity alignment to the ArcFace 112x112 template, bilinear, zero border, RGB, (x-127.5)/127.5, NCHW",
        made_by: None,
    },
    ModelSpec {
        id: "mobilefacenet_128_int8",
        file: "mobilefacenet_128d_int8.onnx",
        sha256: "191478f6b54a9f8d8fb24e9642b15c008cc77b5d3e35dae0fc79f02bafe2095c",
        role: Role::Embedder { dim: 128 },
        licence: "Apache-2.0 (trained on refined MS-Celeb-1M, a data set its publisher withdrew)",
        commercial_use: true,
        source_url: "models/quantize/quantize.py (run `bash deploy/quantize-models.sh`)",
        fixed_input: Some((112, 112)),
        dynamic_batch: true,
        preprocessing: "5-point similarity alignment to the ArcFace 112x112 template, bilinear, zero border, RGB, (x-127.5)/127.5, NCHW",
        made_by: Some(
            "derived by models/quantize/quantize.py from mobilefacenet_128d_dynamic.onnx (sha256 74c5a21f6fa4634dfb95ab6f21fcd5d9487500290c476d8df467713e21e5988a): static QDQ, per-channel int8 weights, uint8 activations, calibrated on ../shared/data/faces_dev (first half of the identities by name)",
        ),
    },
];

/// The fp32 model each derived (8-bit) model was made from, by id.
const DERIVED_FROM: &[(&str, &str)] = &[("mobilefacenet_128_int8", "mobilefacenet_128")];

/// The fp32 model that `spec` was made from (itself when it is not derived): what a route
/// that runs its own fp32 kernels (the CUDA device) loads instead of an 8-bit file.
pub fn fp32_source(spec: &'static ModelSpec) -> Result<&'static ModelSpec> {
    match DERIVED_FROM.iter().find(|(id, _)| *id == spec.id) {
        Some((_, source)) => find(source),
        None => Ok(spec),
    }
}

/// Looks a model up by id.
pub fn find(id: &str) -> Result<&'static ModelSpec> {
    MODELS.iter().find(|m| m.id == id).ok_or_else(|| {
        let known: Vec<&str> = MODELS.iter().map(|m| m.id).collect();
        Error::UnknownModel(id.to_owned(), known.join(", "))
    })
}

/// Sha256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Finds the model's file in `dir` and checks its sha256; returns the path. A derived model
/// (`made_by`) that is missing or differs says to run [`DERIVE_COMMAND`].
pub fn verify(spec: &ModelSpec, dir: &Path) -> Result<PathBuf> {
    let path = dir.join(spec.file);
    if spec.is_derived() {
        if !path.is_file() {
            return Err(Error::DerivedModel {
                path,
                problem: "not found".into(),
                command: DERIVE_COMMAND,
            });
        }
        let actual = sha256_file(&path)?;
        if actual != spec.sha256 {
            return Err(Error::DerivedModel {
                path,
                problem: format!("has sha256 {actual}, the manifest expects {}", spec.sha256),
                command: DERIVE_COMMAND,
            });
        }
        return Ok(path);
    }
    if !path.is_file() {
        return Err(Error::ModelMissing {
            file: spec.file.to_owned(),
            dir: dir.to_owned(),
            sha256: spec.sha256,
            source_url: spec.source_url,
        });
    }
    let actual = sha256_file(&path)?;
    if actual != spec.sha256 {
        return Err(Error::ModelHashMismatch {
            path,
            expected: spec.sha256,
            actual,
            source_url: spec.source_url,
        });
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_derived_model_names_its_fp32_source() {
        for m in MODELS {
            let source = fp32_source(m).unwrap_or_else(|e| panic!("{}: {e}", m.id));
            assert_eq!(m.is_derived(), source.id != m.id, "{}", m.id);
            assert!(!source.is_derived(), "{} -> {}", m.id, source.id);
            assert_eq!(source.role, m.role, "{}", m.id);
        }
    }

    #[test]
    fn ids_and_files_are_unique() {
        for (i, a) in MODELS.iter().enumerate() {
            for b in &MODELS[i + 1..] {
                assert_ne!(a.id, b.id);
                assert_ne!(a.file, b.file);
            }
            assert_eq!(a.sha256.len(), 64, "{}", a.id);
        }
    }

    #[test]
    fn unknown_model_lists_known_ones() {
        let e = find("nope")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("yunet_s"), "{e}");
    }

    #[test]
    fn derived_models_name_their_source_and_its_hash() {
        let derived: Vec<&ModelSpec> = MODELS.iter().filter(|m| m.is_derived()).collect();
        assert!(!derived.is_empty());
        for d in derived {
            let how = d.made_by.unwrap_or_default();
            assert!(how.contains("models/quantize/quantize.py"), "{}", d.id);
            let source = MODELS
                .iter()
                .find(|m| !m.is_derived() && how.contains(m.file) && how.contains(m.sha256));
            let source = source.map(|m| (m.role, m.licence, m.commercial_use));
            assert_eq!(
                source,
                Some((d.role, d.licence, d.commercial_use)),
                "{}",
                d.id
            );
        }
    }

    #[test]
    fn a_missing_derived_model_says_how_to_make_it() {
        let dir = std::env::temp_dir().join("likeness-no-derived-models");
        let spec = find("mobilefacenet_128_int8");
        let e = spec
            .and_then(|s| verify(s, &dir))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("mobilefacenet_128d_int8.onnx"), "{e}");
        assert!(e.contains("bash deploy/quantize-models.sh"), "{e}");
    }
}
