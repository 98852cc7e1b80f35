//! What an upload is: image or video (by magic bytes, never by file name), within the limits,
//! its size after EXIF orientation, sha256, perceptual hash and a JPEG thumbnail. Images are
//! decoded with `likeness-models`' decoder, so limits and error messages are the matcher's.
//! Videos (MP4, QuickTime, WebM) are accepted without decoding.

use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use likeness_models::decode::{self, DecodeLimits};
use likeness_models::{Error as ModelsError, ImageErrorKind};
use sha2::{Digest, Sha256};

use crate::error::{MediaError, Result};
use crate::phash;

/// Longest side of a thumbnail, in pixels.
pub const THUMBNAIL_MAX_SIDE: u32 = 320;

/// Limits on uploads.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeLimits {
    /// Largest image file, in bytes.
    pub max_image_bytes: usize,
    /// Largest width x height of an image.
    pub max_pixels: u64,
    /// Largest allocation of the image decoder, in bytes.
    pub max_alloc_bytes: u64,
    /// Largest video file, in bytes.
    pub max_video_bytes: usize,
}

impl Default for ProbeLimits {
    fn default() -> Self {
        let d = DecodeLimits::default();
        Self {
            max_image_bytes: d.max_bytes,
            max_pixels: d.max_pixels,
            max_alloc_bytes: d.max_alloc_bytes,
            max_video_bytes: 1 << 30,
        }
    }
}

/// Image or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// A still image (JPEG, PNG, WebP).
    Image,
    /// A video (MP4, QuickTime, WebM), stored without decoding.
    Video,
}

impl MediaKind {
    /// `image` or `video`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
        }
    }
}

/// The result of probing an upload.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Image or video.
    pub kind: MediaKind,
    /// MIME type from the magic bytes.
    pub mime: &'static str,
    /// Size in bytes.
    pub size_bytes: u64,
    /// sha256, 64 lowercase hex characters.
    pub sha256: String,
    /// Width after EXIF orientation (images only).
    pub width: Option<u32>,
    /// Height after EXIF orientation (images only).
    pub height: Option<u32>,
    /// Perceptual hash (images only).
    pub phash: Option<u64>,
    /// JPEG thumbnail, longest side at most [`THUMBNAIL_MAX_SIDE`] (images only).
    pub thumbnail_jpeg: Option<Vec<u8>>,
}

/// sha256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The video MIME type if `bytes` starts like an MP4, QuickTime or WebM file.
pub fn sniff_video(bytes: &[u8]) -> Option<&'static str> {
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return Some(if &bytes[8..12] == b"qt  " {
            "video/quicktime"
        } else {
            "video/mp4"
        });
    }
    if bytes.len() >= 8 && matches!(&bytes[4..8], b"moov" | b"mdat" | b"wide" | b"free") {
        return Some("video/quicktime");
    }
    if bytes.len() >= 4 && bytes[..4] == [0x1A, 0x45, 0xDF, 0xA3] {
        let head = &bytes[..bytes.len().min(64)];
        if head.windows(4).any(|w| w == b"webm") {
            return Some("video/webm");
        }
    }
    None
}

fn from_models(e: ModelsError) -> MediaError {
    match e {
        ModelsError::Image { kind, message } => {
            let reason = match kind {
                ImageErrorKind::Empty => "empty",
                ImageErrorKind::TooLarge => "too_large",
                ImageErrorKind::UnsupportedFormat => "unsupported_format",
                ImageErrorKind::LimitsExceeded => "limits_exceeded",
                ImageErrorKind::Corrupt | ImageErrorKind::Internal => "corrupt",
            };
            MediaError::bad_media(reason, message)
        }
        other => MediaError::bad_media("corrupt", other.to_string()),
    }
}

/// Probes an upload. Images are fully decoded (so a corrupt image is refused here, not later).
pub fn probe(bytes: &[u8], limits: &ProbeLimits) -> Result<Probe> {
    if bytes.is_empty() {
        return Err(MediaError::bad_media(
            "empty",
            "empty upload: the file has 0 bytes",
        ));
    }
    if let Some(mime) = sniff_video(bytes) {
        if bytes.len() > limits.max_video_bytes {
            return Err(MediaError::bad_media(
                "too_large",
                format!(
                    "video too large: {} bytes exceeds the limit of {} bytes",
                    bytes.len(),
                    limits.max_video_bytes
                ),
            ));
        }
        return Ok(Probe {
            kind: MediaKind::Video,
            mime,
            size_bytes: bytes.len() as u64,
            sha256: sha256_hex(bytes),
            width: None,
            height: None,
            phash: None,
            thumbnail_jpeg: None,
        });
    }
    let format = decode::sniff(bytes).map_err(|e| match from_models(e) {
        MediaError::BadMedia {
            reason: "unsupported_format",
            ..
        } => MediaError::bad_media(
            "unsupported_format",
            "unsupported file: not a JPEG, PNG or WebP image nor an MP4, QuickTime or WebM video",
        ),
        other => other,
    })?;
    let mime = match format {
        image::ImageFormat::Png => "image/png",
        image::ImageFormat::WebP => "image/webp",
        _ => "image/jpeg",
    };
    let dl = DecodeLimits {
        max_bytes: limits.max_image_bytes,
        max_pixels: limits.max_pixels,
        max_alloc_bytes: limits.max_alloc_bytes,
    };
    let img = decode::decode(bytes, &dl).map_err(from_models)?;
    let phash = phash::phash_rgb(img.width, img.height, &img.data);
    let thumb = thumbnail(img.width, img.height, img.data)?;
    Ok(Probe {
        kind: MediaKind::Image,
        mime,
        size_bytes: bytes.len() as u64,
        sha256: sha256_hex(bytes),
        width: Some(thumb.0),
        height: Some(thumb.1),
        phash,
        thumbnail_jpeg: Some(thumb.2),
    })
}

/// A JPEG thumbnail (quality 80) with the longest side at most [`THUMBNAIL_MAX_SIDE`];
/// returns the source size and the JPEG.
fn thumbnail(width: u32, height: u32, data: Vec<u8>) -> Result<(u32, u32, Vec<u8>)> {
    let img = image::RgbImage::from_raw(width, height, data)
        .ok_or_else(|| MediaError::bad_media("corrupt", "decoded image has a wrong size"))?;
    let longest = width.max(height);
    let small = if longest > THUMBNAIL_MAX_SIDE {
        let scale = f64::from(THUMBNAIL_MAX_SIDE) / f64::from(longest);
        let tw = ((f64::from(width) * scale).round() as u32).clamp(1, THUMBNAIL_MAX_SIDE);
        let th = ((f64::from(height) * scale).round() as u32).clamp(1, THUMBNAIL_MAX_SIDE);
        imageops::resize(&img, tw, th, FilterType::Triangle)
    } else {
        img
    };
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 80)
        .encode_image(&small)
        .map_err(|e| MediaError::bad_media("corrupt", format!("thumbnail encoding failed: {e}")))?;
    Ok((width, height, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_magic() {
        let mut mp4 = vec![0, 0, 0, 0x18];
        mp4.extend_from_slice(b"ftypisom\0\0\0\0");
        assert_eq!(sniff_video(&mp4), Some("video/mp4"));
        let mut mov = vec![0, 0, 0, 0x14];
        mov.extend_from_slice(b"ftypqt  \0\0\0\0");
        assert_eq!(sniff_video(&mov), Some("video/quicktime"));
        let mut webm = vec![
            0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81, 0x01, 0x42, 0x82,
        ];
        webm.extend_from_slice(b"\x84webm");
        assert_eq!(sniff_video(&webm), Some("video/webm"));
        assert_eq!(sniff_video(b"\xFF\xD8\xFF\xE0"), None);
        let p = probe(&mp4, &ProbeLimits::default()).unwrap();
        assert_eq!(p.kind, MediaKind::Video);
        assert!(p.thumbnail_jpeg.is_none());
    }

    #[test]
    fn refusals_name_the_problem() {
        let l = ProbeLimits::default();
        assert_eq!(probe(b"", &l).unwrap_err().code(), "empty");
        let e = probe(b"hello world, not an image", &l).unwrap_err();
        assert_eq!(e.code(), "unsupported_format");
        assert!(e.to_string().contains("JPEG"), "{e}");
        let small = ProbeLimits {
            max_video_bytes: 10,
            ..l
        };
        let mut mp4 = vec![0, 0, 0, 0x18];
        mp4.extend_from_slice(b"ftypisom\0\0\0\0");
        assert_eq!(probe(&mp4, &small).unwrap_err().code(), "too_large");
    }
}
