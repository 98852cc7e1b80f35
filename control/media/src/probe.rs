//! What an upload is: image or video (by magic bytes, never by file name), within the limits,
//! its size after EXIF orientation, sha256, perceptual hash and a JPEG thumbnail. Images are
//! decoded with `likeness-models`' decoder, so limits and error messages are the matcher's.
//! Videos (MP4, QuickTime, WebM) are accepted without decoding.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

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

/// An uploaded file spooled to a temporary file (removed when this is dropped), with its size
/// and sha256 computed while it was written: what a transport hands the services instead of
/// the bytes, so an upload's memory does not grow with its size.
#[derive(Debug)]
pub struct UploadFile {
    path: tempfile::TempPath,
    size: u64,
    sha256: String,
}

impl UploadFile {
    /// A spooled file: `path` holds exactly `size` bytes whose sha256 (lowercase hex) is
    /// `sha256`.
    pub fn new(path: tempfile::TempPath, size: u64, sha256: String) -> Self {
        Self { path, size, sha256 }
    }

    /// Spools `bytes` to a temporary file in `dir` (the system's temporary directory if
    /// `None`); for tests and small in-memory content.
    pub fn from_bytes(dir: Option<&Path>, bytes: &[u8]) -> Result<Self> {
        let mut w = UploadWriter::new(dir)?;
        w.write(bytes)?;
        w.finish()
    }

    /// The temporary file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Its sha256, 64 lowercase hex characters.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Its first bytes, at most `n`.
    pub fn head(&self, n: usize) -> Result<Vec<u8>> {
        let f = File::open(&self.path).map_err(|e| MediaError::io(&*self.path, e))?;
        let mut out = Vec::with_capacity(n.min(1 << 20));
        f.take(n as u64)
            .read_to_end(&mut out)
            .map_err(|e| MediaError::io(&*self.path, e))?;
        Ok(out)
    }
}

/// Writes an upload to a temporary file as it arrives, hashing it on the way; the file is
/// removed if the writer is dropped before [`UploadWriter::finish`].
#[derive(Debug)]
pub struct UploadWriter {
    file: std::io::BufWriter<tempfile::NamedTempFile>,
    size: u64,
    hash: Sha256,
}

impl UploadWriter {
    /// A new temporary file in `dir` (created if missing; the system's temporary directory
    /// if `None`).
    pub fn new(dir: Option<&Path>) -> Result<Self> {
        let file = match dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|e| MediaError::io(d, e))?;
                tempfile::Builder::new()
                    .prefix("upload-")
                    .tempfile_in(d)
                    .map_err(|e| MediaError::io(d, e))?
            }
            None => tempfile::Builder::new()
                .prefix("likeness-upload-")
                .tempfile()
                .map_err(|e| MediaError::io(std::env::temp_dir(), e))?,
        };
        Ok(Self {
            file: std::io::BufWriter::with_capacity(256 << 10, file),
            size: 0,
            hash: Sha256::new(),
        })
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends `bytes`.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.hash.update(bytes);
        self.file
            .write_all(bytes)
            .map_err(|e| MediaError::io(self.file.get_ref().path(), e))?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Flushes and closes the file; the result removes it when dropped.
    pub fn finish(self) -> Result<UploadFile> {
        let Self {
            mut file,
            size,
            hash,
        } = self;
        let path = file.get_ref().path().to_path_buf();
        file.flush().map_err(|e| MediaError::io(&path, e))?;
        let file = file
            .into_inner()
            .map_err(|e| MediaError::io(&path, e.into_error()))?;
        Ok(UploadFile::new(
            file.into_temp_path(),
            size,
            hex::encode(hash.finalize()),
        ))
    }
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

/// Probes a spooled upload: a video by its first bytes only (size and sha256 come from the
/// spooling), an image read into memory within `max_image_bytes` and decoded as [`probe`]
/// does. Refusals are the same as [`probe`]'s.
pub fn probe_file(file: &UploadFile, limits: &ProbeLimits) -> Result<Probe> {
    if file.size() == 0 {
        return Err(MediaError::bad_media(
            "empty",
            "empty upload: the file has 0 bytes",
        ));
    }
    let head = file.head(64)?;
    if let Some(mime) = sniff_video(&head) {
        if file.size() > limits.max_video_bytes as u64 {
            return Err(MediaError::bad_media(
                "too_large",
                format!(
                    "video too large: {} bytes exceeds the limit of {} bytes",
                    file.size(),
                    limits.max_video_bytes
                ),
            ));
        }
        return Ok(Probe {
            kind: MediaKind::Video,
            mime,
            size_bytes: file.size(),
            sha256: file.sha256().to_owned(),
            width: None,
            height: None,
            phash: None,
            thumbnail_jpeg: None,
        });
    }
    if file.size() > limits.max_image_bytes as u64 {
        // Refused as `probe` refuses it (unsupported first, then too large), unread.
        probe(&head, limits)?;
        return Err(MediaError::bad_media(
            "too_large",
            format!(
                "file too large: {} bytes exceeds the limit of {} bytes",
                file.size(),
                limits.max_image_bytes
            ),
        ));
    }
    let bytes = file.head(limits.max_image_bytes)?;
    probe(&bytes, limits)
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

    #[test]
    fn probe_file_reads_a_video_header_only_and_refuses_as_probe_does() {
        let l = ProbeLimits::default();
        let mut mp4 = vec![0, 0, 0, 0x18];
        mp4.extend_from_slice(b"ftypisom\0\0\0\0");
        mp4.extend(std::iter::repeat_n(7u8, 200_000));
        let f = UploadFile::from_bytes(None, &mp4).unwrap();
        let p = probe_file(&f, &l).unwrap();
        assert_eq!((p.kind, p.mime), (MediaKind::Video, "video/mp4"));
        assert_eq!(p.size_bytes, mp4.len() as u64);
        assert_eq!(p.sha256, sha256_hex(&mp4));
        let small = ProbeLimits {
            max_video_bytes: 10,
            max_image_bytes: 10,
            ..l
        };
        assert_eq!(probe_file(&f, &small).unwrap_err().code(), "too_large");
        let empty = UploadFile::from_bytes(None, b"").unwrap();
        assert_eq!(probe_file(&empty, &l).unwrap_err().code(), "empty");
        let text = UploadFile::from_bytes(None, &[b'x'; 100]).unwrap();
        assert_eq!(
            probe_file(&text, &small).unwrap_err().code(),
            "unsupported_format"
        );
        let jpeg = UploadFile::from_bytes(None, &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0, 0, 0, 0, 0, 0, 0])
            .unwrap();
        assert_eq!(probe_file(&jpeg, &small).unwrap_err().code(), "too_large");
    }
}
