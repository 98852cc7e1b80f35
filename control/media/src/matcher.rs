//! gRPC client of the face matcher (`likeness.matcher.v1.Matcher`).
//!
//! The channel connects lazily (creating a client never fails because the matcher is down)
//! and reconnects by itself; every call has a deadline. Errors say what to do:
//! [`MediaError::MatcherUnavailable`] — retry later; [`MediaError::MatcherBadInput`] — do not
//! retry; [`MediaError::Matcher`] — the matcher failed otherwise.

use std::time::Duration;

use likeness_proto::matcher_v1 as pb;
use pb::matcher_client::MatcherClient as PbClient;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::error::{MediaError, Result};

/// Matcher client configuration.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatcherConfig {
    /// gRPC address, e.g. `http://127.0.0.1:50051`.
    pub url: String,
    /// Connection timeout, milliseconds.
    pub connect_timeout_ms: u64,
    /// Deadline of a call (Suggest, Enroll, removals), milliseconds.
    pub request_timeout_ms: u64,
    /// Candidates per face asked from Suggest (0 = the matcher's default).
    pub k: u32,
    /// Minimum candidate score for Suggest (0 = the matcher's default).
    pub threshold: f32,
    /// Largest message, bytes (images travel in messages).
    pub max_message_bytes: usize,
    /// The model version recorded with every suggestion (the matcher's detector+embedder).
    pub model_version: String,
}

impl Default for MatcherConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:50051".into(),
            connect_timeout_ms: 2_000,
            request_timeout_ms: 60_000,
            k: 5,
            threshold: 0.0,
            max_message_bytes: 128 << 20,
            model_version: "yunet_s+mobilefacenet_128".into(),
        }
    }
}

/// Quality of a detected face.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FaceQuality {
    /// Shorter side of the box, pixels.
    pub face_size: f32,
    /// Variance of the Laplacian of the aligned crop (higher = sharper).
    pub sharpness: f32,
    /// Too small for identification.
    pub too_small: bool,
    /// Too blurry for identification.
    pub too_blurry: bool,
    /// Usable for identification.
    pub identifiable: bool,
}

/// A candidate person for a face.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Candidate {
    /// Person id (the control plane's).
    pub person_id: String,
    /// Cosine similarity of the best template.
    pub score: f32,
    /// The matcher's template id.
    pub template_id: u64,
}

/// A face found by Suggest.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SuggestedFace {
    /// Box `[x1, y1, x2, y2]` in pixels of the oriented image.
    pub bbox: [f32; 4],
    /// Five landmarks `[x, y]`: eyes, nose tip, mouth corners.
    pub landmarks: Vec<[f32; 2]>,
    /// Detector score.
    pub score: f32,
    /// Quality.
    pub quality: FaceQuality,
    /// The person assigned by the matcher (a person at most once per image), if any.
    pub person_id: Option<String>,
    /// Score of the assigned person.
    pub person_score: f32,
    /// All candidates above the threshold, best first.
    pub candidates: Vec<Candidate>,
}

/// The result of Suggest for one image.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Suggestion {
    /// Width of the oriented image.
    pub width: u32,
    /// Height of the oriented image.
    pub height: u32,
    /// Faces.
    pub faces: Vec<SuggestedFace>,
    /// Model version that produced it (from configuration).
    pub model_version: String,
}

/// The matcher client. Cheap to clone (the channel is shared).
#[derive(Debug, Clone)]
pub struct MatcherClient {
    cfg: MatcherConfig,
    client: PbClient<Channel>,
    health: HealthClient<Channel>,
}

fn status_to_error(what: &str, s: tonic::Status) -> MediaError {
    use tonic::Code as C;
    let msg = format!("{what}: {} ({:?})", s.message(), s.code());
    match s.code() {
        C::Unavailable
        | C::DeadlineExceeded
        | C::ResourceExhausted
        | C::Cancelled
        | C::Aborted
        | C::Unknown => MediaError::MatcherUnavailable(msg),
        C::InvalidArgument | C::OutOfRange => MediaError::MatcherBadInput(msg),
        _ => MediaError::Matcher(msg),
    }
}

fn image_error(e: pb::ImageError) -> MediaError {
    use pb::ErrorKind as K;
    match K::try_from(e.kind).unwrap_or(K::Unspecified) {
        K::Overloaded => MediaError::MatcherUnavailable(format!("overloaded: {}", e.message)),
        K::Internal | K::Unspecified => MediaError::Matcher(e.message),
        K::Empty | K::TooLarge | K::UnsupportedFormat | K::Corrupt | K::LimitsExceeded => {
            MediaError::MatcherBadInput(e.message)
        }
    }
}

impl MatcherClient {
    /// A client for `cfg.url`; nothing is connected until the first call.
    pub fn new(cfg: MatcherConfig) -> Result<Self> {
        let ep = Endpoint::from_shared(cfg.url.clone())
            .map_err(|e| MediaError::MatcherConfig(format!("url {:?}: {e}", cfg.url)))?
            .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms.max(1)))
            .timeout(Duration::from_millis(cfg.request_timeout_ms.max(1)));
        let ch = ep.connect_lazy();
        let client = PbClient::new(ch.clone())
            .max_decoding_message_size(cfg.max_message_bytes)
            .max_encoding_message_size(cfg.max_message_bytes);
        Ok(Self {
            cfg,
            client,
            health: HealthClient::new(ch),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MatcherConfig {
        &self.cfg
    }

    /// Ok when the matcher answers its health check as serving.
    pub async fn health(&self) -> Result<()> {
        let r = self
            .health
            .clone()
            .check(tonic_health::pb::HealthCheckRequest {
                service: "likeness.matcher.v1.Matcher".into(),
            })
            .await
            .map_err(|s| status_to_error("health check", s))?;
        if r.into_inner().status == ServingStatus::Serving as i32 {
            Ok(())
        } else {
            Err(MediaError::MatcherUnavailable(
                "health check: the matcher is not serving".into(),
            ))
        }
    }

    /// Faces of an image with their candidates (people enrolled in the tenant's gallery).
    pub async fn suggest(&self, tenant: &str, image: Vec<u8>) -> Result<Suggestion> {
        let r = self
            .client
            .clone()
            .suggest(pb::SuggestRequest {
                tenant_id: tenant.to_owned(),
                image: Some(pb::ImageInput {
                    id: String::new(),
                    data: image,
                }),
                k: self.cfg.k,
                threshold: self.cfg.threshold,
                options: None,
            })
            .await
            .map_err(|s| status_to_error("Suggest", s))?
            .into_inner();
        let img = r
            .image
            .ok_or_else(|| MediaError::Matcher("Suggest: no image result".into()))?;
        if let Some(e) = img.error {
            return Err(image_error(e));
        }
        let faces = r
            .faces
            .into_iter()
            .filter_map(|s| {
                let f = s.face?;
                let b = f.r#box.unwrap_or_default();
                let q = f.quality.unwrap_or_default();
                Some(SuggestedFace {
                    bbox: [b.x1, b.y1, b.x2, b.y2],
                    landmarks: f.landmarks.iter().map(|p| [p.x, p.y]).collect(),
                    score: f.score,
                    quality: FaceQuality {
                        face_size: q.face_size,
                        sharpness: q.sharpness,
                        too_small: q.too_small,
                        too_blurry: q.too_blurry,
                        identifiable: q.identifiable,
                    },
                    person_id: (!s.person_id.is_empty()).then_some(s.person_id),
                    person_score: s.score,
                    candidates: s
                        .candidates
                        .into_iter()
                        .map(|c| Candidate {
                            person_id: c.person_id,
                            score: c.score,
                            template_id: c.template_id,
                        })
                        .collect(),
                })
            })
            .collect();
        Ok(Suggestion {
            width: img.width,
            height: img.height,
            faces,
            model_version: self.cfg.model_version.clone(),
        })
    }

    async fn enroll(&self, req: pb::EnrollRequest) -> Result<Vec<u64>> {
        Ok(self
            .client
            .clone()
            .enroll(req)
            .await
            .map_err(|s| status_to_error("Enroll", s))?
            .into_inner()
            .template_ids)
    }

    /// Enrolls the face at `bbox` (`[x1, y1, x2, y2]`, pixels of the oriented image) of an
    /// image as a template of `person`; returns the template ids.
    pub async fn enroll_face(
        &self,
        tenant: &str,
        person: &str,
        image: Vec<u8>,
        bbox: [f32; 4],
    ) -> Result<Vec<u64>> {
        self.enroll(pb::EnrollRequest {
            tenant_id: tenant.to_owned(),
            person_id: person.to_owned(),
            templates: vec![],
            faces: vec![pb::FaceRef {
                image,
                r#box: Some(pb::Box {
                    x1: bbox[0],
                    y1: bbox[1],
                    x2: bbox[2],
                    y2: bbox[3],
                }),
            }],
        })
        .await
    }

    /// Enrolls embeddings as templates of `person`; returns the template ids.
    pub async fn enroll_templates(
        &self,
        tenant: &str,
        person: &str,
        templates: Vec<Vec<f32>>,
    ) -> Result<Vec<u64>> {
        self.enroll(pb::EnrollRequest {
            tenant_id: tenant.to_owned(),
            person_id: person.to_owned(),
            templates: templates
                .into_iter()
                .map(|values| pb::Template { values })
                .collect(),
            faces: vec![],
        })
        .await
    }

    /// Removes templates by id (erased from the matcher's disk on return). A tenant the
    /// matcher has never seen has nothing to remove: 0.
    pub async fn remove_templates(&self, tenant: &str, ids: Vec<u64>) -> Result<u32> {
        if ids.is_empty() {
            return Ok(0);
        }
        match self
            .client
            .clone()
            .remove_templates(pb::RemoveTemplatesRequest {
                tenant_id: tenant.to_owned(),
                template_ids: ids,
            })
            .await
        {
            Ok(r) => Ok(r.into_inner().removed),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(0),
            Err(s) => Err(status_to_error("RemoveTemplates", s)),
        }
    }

    /// Removes every template of a person. A tenant the matcher has never seen: 0.
    pub async fn remove_person(&self, tenant: &str, person: &str) -> Result<u32> {
        match self
            .client
            .clone()
            .remove_person(pb::RemovePersonRequest {
                tenant_id: tenant.to_owned(),
                person_id: person.to_owned(),
            })
            .await
        {
            Ok(r) => Ok(r.into_inner().removed),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(0),
            Err(s) => Err(status_to_error("RemovePerson", s)),
        }
    }

    /// Number of templates and persons in the tenant's gallery (0, 0 when it has none).
    pub async fn tenant_stats(&self, tenant: &str) -> Result<(u64, u64)> {
        match self
            .client
            .clone()
            .tenant_stats(pb::TenantStatsRequest {
                tenant_id: tenant.to_owned(),
            })
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                Ok((r.templates, r.persons))
            }
            Err(s) if s.code() == tonic::Code::NotFound => Ok((0, 0)),
            Err(s) => Err(status_to_error("TenantStats", s)),
        }
    }
}
