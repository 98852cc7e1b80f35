//! The matcher's service layer: what gRPC (and any other transport) calls. Transport types
//! stay out of it.

use std::sync::Arc;

use likeness_models::{ImageErrorKind, Pipeline};

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

/// The matcher service: a loaded pipeline behind a dynamic batcher.
#[derive(Debug)]
pub struct MatcherService {
    batcher: Batcher,
    pipeline: Arc<Pipeline>,
    metrics: Metrics,
    max_images: usize,
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
        let batcher = Batcher::start(pipeline.clone(), &cfg.batcher, metrics.clone())?;
        Ok(Self {
            batcher,
            pipeline,
            metrics,
            max_images: cfg.server.max_images_per_request,
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
