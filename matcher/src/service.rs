//! The matcher's service layer: what gRPC (and any other transport) calls. Transport types
//! stay out of it.

use std::sync::Arc;

use likeness_gallery::{Candidate, Galleries, TenantId, TenantStats};
use likeness_models::{Face, ImageErrorKind, Pipeline};

use crate::batcher::{AnalyzedImage, Batcher};
use crate::config::Config;
use crate::error::MatcherError;
use crate::metrics::Metrics;

/// Per-request options.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AnalyzeOptions {
    /// Return embeddings.
    pub include_embeddings: bool,
    /// Detector score threshold override.
    pub min_score: Option<f32>,
}

impl AnalyzeOptions {
    /// Validates the options.
    pub fn validate(&self) -> Result<(), MatcherError> {
        if let Some(s) = self.min_score
            && !(0.0..=1.0).contains(&s)
        {
            return Err(MatcherError::InvalidArgument(format!(
                "options.min_score must be in [0, 1] (0 = server default), got {s}"
            )));
        }
        Ok(())
    }
}

/// One input image.
#[derive(Debug, Clone)]
pub struct ImageInput {
    /// Caller's id, echoed back.
    pub id: String,
    /// Encoded bytes.
    pub data: Vec<u8>,
}

/// Why one image failed.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFailure {
    /// Kind (`None` = overloaded, which is not a property of the image).
    pub kind: Option<ImageErrorKind>,
    /// Message naming the problem.
    pub message: String,
}

/// The result for one image.
#[derive(Debug, Clone)]
pub struct ImageReport {
    /// Caller's id.
    pub id: String,
    /// Faces, or why the image failed.
    pub result: Result<AnalyzedImage, ImageFailure>,
}

/// A face of an upload with its proposal.
#[derive(Debug, Clone)]
pub struct Suggestion {
    /// The face.
    pub face: Face,
    /// The assigned person (`None` = unknown).
    pub person: Option<Arc<str>>,
    /// Score of the assigned person (0 when unknown).
    pub score: f32,
    /// Every candidate above the threshold, best first.
    pub candidates: Vec<Candidate>,
}

/// Result of `suggest`.
#[derive(Debug, Clone)]
pub struct SuggestReport {
    /// Caller's id of the image.
    pub id: String,
    /// Width and height, or why the image failed.
    pub image: Result<(u32, u32), ImageFailure>,
    /// Faces with their proposals.
    pub faces: Vec<Suggestion>,
}

/// A face to enroll, located by its box in an image.
#[derive(Debug, Clone)]
pub struct FaceRef {
    /// Encoded image.
    pub image: Vec<u8>,
    /// Box `[x1, y1, x2, y2]` of the face.
    pub bbox: [f32; 4],
}

/// The matcher service: a loaded pipeline behind a dynamic batcher, and the galleries.
#[derive(Debug)]
pub struct MatcherService {
    batcher: Batcher,
    pipeline: Arc<Pipeline>,
    metrics: Metrics,
    max_images: usize,
    galleries: Option<Arc<Galleries>>,
    default_k: usize,
    default_threshold: f32,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, MatcherError> + Send + 'static,
) -> Result<T, MatcherError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| MatcherError::Io(format!("worker task failed: {e}")))?
}

fn tenant(id: &str) -> Result<TenantId, MatcherError> {
    Ok(TenantId::parse(id)?)
}

fn failure(e: likeness_models::Error) -> ImageFailure {
    ImageFailure {
        kind: Some(e.image_kind()),
        message: e.to_string(),
    }
}

impl MatcherService {
    /// Loads the models and starts the batcher.
    pub fn start(cfg: &Config, metrics: Metrics) -> Result<Self, MatcherError> {
        let pipeline = Arc::new(Pipeline::load(cfg.pipeline.clone())?);
        if cfg.gallery.dim != pipeline.embedding_dim() {
            return Err(MatcherError::Config(format!(
                "gallery.dim is {} but the embedder {} produces {} values",
                cfg.gallery.dim,
                cfg.pipeline.embedder,
                pipeline.embedding_dim()
            )));
        }
        let galleries = match cfg.gallery.master()? {
            Some(key) => Some(Arc::new(Galleries::open(cfg.gallery.clone(), key)?)),
            None => {
                tracing::warn!(
                    "gallery disabled: set gallery.master_key_file (or LIKENESS_MATCHER__GALLERY__MASTER_KEY_FILE) to enable Enroll/Identify/Suggest"
                );
                None
            }
        };
        // The one line that says which backend runs and why.
        let engine = crate::engine::select(cfg)?;
        tracing::info!("{}", engine.log_line);
        let batcher = Batcher::start(
            pipeline.clone(),
            engine.device,
            &cfg.batcher,
            metrics.clone(),
        )?;
        Ok(Self {
            batcher,
            pipeline,
            metrics,
            max_images: cfg.server.max_images_per_request,
            galleries,
            default_k: cfg.gallery.default_k,
            default_threshold: cfg.gallery.default_threshold,
        })
    }

    /// The loaded pipeline.
    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Analyses a request's images; the whole request is refused with `Overloaded` when the
    /// queue cannot take all of them. Per-image problems are reported per image.
    pub async fn analyze(
        &self,
        images: Vec<ImageInput>,
        opts: AnalyzeOptions,
    ) -> Result<Vec<ImageReport>, MatcherError> {
        opts.validate()?;
        if images.is_empty() {
            return Err(MatcherError::InvalidArgument(
                "images: at least one image is required".into(),
            ));
        }
        if images.len() > self.max_images {
            return Err(MatcherError::InvalidArgument(format!(
                "images: {} images exceed the limit of {} per request; use AnalyzeStream for bulk",
                images.len(),
                self.max_images
            )));
        }
        let permits = self.batcher.try_reserve(images.len())?;
        let mut pending = Vec::with_capacity(images.len());
        for (img, permit) in images.into_iter().zip(permits) {
            let rx = self.batcher.submit(img.data, opts.min_score, permit)?;
            pending.push((img.id, rx));
        }
        let mut out = Vec::with_capacity(pending.len());
        for (id, rx) in pending {
            let result = match rx.await {
                Ok(r) => r.map_err(failure),
                Err(_) => return Err(MatcherError::ShuttingDown),
            };
            out.push(ImageReport { id, result });
        }
        Ok(out)
    }

    /// Analyses one image of a stream, waiting for queue room (backpressure, no refusal).
    pub async fn analyze_waiting(&self, img: ImageInput, opts: AnalyzeOptions) -> ImageReport {
        let result = async {
            let permit = self.batcher.reserve_wait().await?;
            let rx = self.batcher.submit(img.data, opts.min_score, permit)?;
            rx.await.map_err(|_| MatcherError::ShuttingDown)
        }
        .await;
        let result = match result {
            Ok(r) => r.map_err(failure),
            Err(e) => Err(ImageFailure {
                kind: None,
                message: e.to_string(),
            }),
        };
        ImageReport { id: img.id, result }
    }
}

impl MatcherService {
    fn galleries(&self) -> Result<Arc<Galleries>, MatcherError> {
        self.galleries.clone().ok_or_else(|| {
            MatcherError::FailedPrecondition(
                "the gallery is disabled: configure gallery.master_key_file (or gallery.master_key)".into(),
            )
        })
    }

    fn k_and_threshold(&self, k: u32, threshold: f32) -> Result<(usize, f32), MatcherError> {
        let k = if k == 0 { self.default_k } else { k as usize };
        if k > 100 {
            return Err(MatcherError::InvalidArgument(format!(
                "k must be at most 100, got {k}"
            )));
        }
        let t = if threshold == 0.0 {
            self.default_threshold
        } else {
            threshold
        };
        if !(-1.0..=1.0).contains(&t) {
            return Err(MatcherError::InvalidArgument(format!(
                "threshold must be in [-1, 1] (0 = server default), got {t}"
            )));
        }
        Ok((k, t))
    }

    /// Enrolls templates of a person: the given vectors plus the embeddings of the given faces
    /// (each must be found at its box and be identifiable). Returns the template ids.
    pub async fn enroll(
        &self,
        tenant_id: &str,
        person: &str,
        mut templates: Vec<Vec<f32>>,
        faces: Vec<FaceRef>,
    ) -> Result<Vec<u64>, MatcherError> {
        let t = tenant(tenant_id)?;
        let g = self.galleries()?;
        if templates.is_empty() && faces.is_empty() {
            return Err(MatcherError::InvalidArgument(
                "give at least one template or face".into(),
            ));
        }
        if !faces.is_empty() {
            let inputs = faces
                .iter()
                .enumerate()
                .map(|(i, f)| ImageInput {
                    id: i.to_string(),
                    data: f.image.clone(),
                })
                .collect();
            let reports = self.analyze(inputs, AnalyzeOptions::default()).await?;
            for (i, (r, f)) in reports.into_iter().zip(&faces).enumerate() {
                let analysed = r.result.map_err(|e| {
                    MatcherError::InvalidArgument(format!("faces[{i}]: {}", e.message))
                })?;
                let best = analysed
                    .faces
                    .into_iter()
                    .map(|face| {
                        (
                            likeness_models::detect::iou(&face.detection.bbox, &f.bbox),
                            face,
                        )
                    })
                    .filter(|(iou, _)| *iou >= 0.3)
                    .max_by(|a, b| a.0.total_cmp(&b.0));
                let Some((_, face)) = best else {
                    return Err(MatcherError::InvalidArgument(format!(
                        "faces[{i}]: no face found at box {:?}",
                        f.bbox
                    )));
                };
                if !face.quality.identifiable {
                    return Err(MatcherError::InvalidArgument(format!(
                        "faces[{i}]: the face at {:?} is too {} to serve as a template",
                        f.bbox,
                        if face.quality.too_small {
                            "small"
                        } else {
                            "blurry"
                        }
                    )));
                }
                templates.push(face.embedding);
            }
        }
        let person = person.to_owned();
        blocking(move || Ok(g.enroll(&t, &person, &templates)?)).await
    }

    /// Removes a person's templates (erased from disk on return); returns how many.
    pub async fn remove_person(
        &self,
        tenant_id: &str,
        person: &str,
    ) -> Result<usize, MatcherError> {
        let t = tenant(tenant_id)?;
        let g = self.galleries()?;
        let person = person.to_owned();
        blocking(move || Ok(g.remove_person(&t, &person)?)).await
    }

    /// Removes templates by id (erased from disk on return).
    pub async fn remove_templates(
        &self,
        tenant_id: &str,
        ids: Vec<u64>,
    ) -> Result<usize, MatcherError> {
        let t = tenant(tenant_id)?;
        let g = self.galleries()?;
        if ids.is_empty() {
            return Err(MatcherError::InvalidArgument(
                "template_ids must not be empty".into(),
            ));
        }
        blocking(move || Ok(g.remove_templates(&t, &ids)?)).await
    }

    /// Candidates per query embedding.
    pub async fn identify(
        &self,
        tenant_id: &str,
        queries: Vec<Vec<f32>>,
        k: u32,
        threshold: f32,
    ) -> Result<Vec<Vec<Candidate>>, MatcherError> {
        let t = tenant(tenant_id)?;
        let g = self.galleries()?;
        let (k, th) = self.k_and_threshold(k, threshold)?;
        blocking(move || Ok(g.identify(&t, &queries, k, th)?)).await
    }

    /// Analyses an upload and proposes a person for each identifiable face, assigning so that
    /// a person is proposed at most once per photo.
    pub async fn suggest(
        &self,
        tenant_id: &str,
        image: ImageInput,
        opts: AnalyzeOptions,
        k: u32,
        threshold: f32,
    ) -> Result<SuggestReport, MatcherError> {
        let t = tenant(tenant_id)?;
        let g = self.galleries()?;
        let (k, th) = self.k_and_threshold(k, threshold)?;
        let id = image.id.clone();
        let mut reports = self.analyze(vec![image], opts).await?;
        let Some(report) = reports.pop() else {
            return Err(MatcherError::Io("no result".into()));
        };
        let analysed = match report.result {
            Ok(a) => a,
            Err(e) => {
                return Ok(SuggestReport {
                    id,
                    image: Err(e),
                    faces: Vec::new(),
                });
            }
        };
        let (w, h) = (analysed.width, analysed.height);
        let faces = analysed.faces;
        let queries: Vec<Vec<f32>> = faces
            .iter()
            .filter(|f| f.quality.identifiable)
            .map(|f| f.embedding.clone())
            .collect();
        let cands = if queries.is_empty() {
            Vec::new()
        } else {
            blocking(move || Ok(g.identify(&t, &queries, k, th)?)).await?
        };
        let mut per_face: Vec<Vec<Candidate>> = Vec::with_capacity(faces.len());
        let mut it = cands.into_iter();
        for f in &faces {
            per_face.push(if f.quality.identifiable {
                it.next().unwrap_or_default()
            } else {
                Vec::new()
            });
        }
        // Score matrix over the persons that appear among the candidates.
        let mut persons: Vec<Arc<str>> = Vec::new();
        for c in per_face.iter().flatten() {
            if !persons.contains(&c.person) {
                persons.push(c.person.clone());
            }
        }
        let matrix: Vec<Vec<f32>> = per_face
            .iter()
            .map(|cs| {
                persons
                    .iter()
                    .map(|p| {
                        cs.iter()
                            .find(|c| &c.person == p)
                            .map(|c| c.score)
                            .unwrap_or(f32::MIN)
                    })
                    .collect()
            })
            .collect();
        let assigned = likeness_gallery::assign::assign(&matrix, th);
        let faces = faces
            .into_iter()
            .zip(per_face)
            .zip(assigned)
            .map(|((face, candidates), a)| {
                let (person, score) = match a {
                    Some(p) => (
                        Some(persons[p].clone()),
                        matrix_score(&candidates, &persons[p]),
                    ),
                    None => (None, 0.0),
                };
                Suggestion {
                    face,
                    person,
                    score,
                    candidates,
                }
            })
            .collect();
        Ok(SuggestReport {
            id,
            image: Ok((w, h)),
            faces,
        })
    }

    /// Gallery statistics of a tenant.
    pub async fn tenant_stats(&self, tenant_id: &str) -> Result<TenantStats, MatcherError> {
        let t = tenant(tenant_id)?;
        let g = self.galleries()?;
        blocking(move || Ok(g.stats(&t)?)).await
    }

    /// Deletes a tenant's gallery; returns whether it existed.
    pub async fn drop_tenant(&self, tenant_id: &str) -> Result<bool, MatcherError> {
        let t = tenant(tenant_id)?;
        let g = self.galleries()?;
        blocking(move || Ok(g.drop_tenant(&t)?)).await
    }
}

fn matrix_score(cands: &[Candidate], p: &Arc<str>) -> f32 {
    cands
        .iter()
        .find(|c| &c.person == p)
        .map(|c| c.score)
        .unwrap_or(0.0)
}
