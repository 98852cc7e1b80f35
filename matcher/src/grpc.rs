//! gRPC transport: `likeness.matcher.v1.Matcher` on top of [`MatcherService`], plus health
//! checking and server reflection.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use likeness_models::ImageErrorKind;
use likeness_proto::matcher_v1 as pb;
use pb::matcher_server::{Matcher, MatcherServer};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::batcher::AnalyzedImage;
use crate::service::{AnalyzeOptions, ImageFailure, ImageInput, ImageReport, MatcherService};

/// The gRPC face of the matcher.
#[derive(Debug, Clone)]
pub struct GrpcMatcher {
    svc: Arc<MatcherService>,
    max_in_flight: usize,
}

impl GrpcMatcher {
    /// Wraps the service; `max_in_flight` bounds each stream's concurrent images.
    pub fn new(svc: Arc<MatcherService>, max_in_flight: usize) -> Self {
        Self { svc, max_in_flight }
    }

    /// The tonic service with message size limits.
    pub fn into_server(self, max_message_bytes: usize) -> MatcherServer<Self> {
        MatcherServer::new(self)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes)
    }

    fn count(&self, method: &str, code: tonic::Code) {
        self.svc
            .metrics()
            .requests
            .with_label_values(&[method, code_name(code)])
            .inc();
    }
}

fn code_name(c: tonic::Code) -> &'static str {
    match c {
        tonic::Code::Ok => "ok",
        tonic::Code::InvalidArgument => "invalid_argument",
        tonic::Code::ResourceExhausted => "resource_exhausted",
        tonic::Code::Unavailable => "unavailable",
        tonic::Code::Cancelled => "cancelled",
        _ => "error",
    }
}

fn options(o: Option<pb::AnalyzeOptions>) -> AnalyzeOptions {
    let o = o.unwrap_or_default();
    AnalyzeOptions {
        include_embeddings: o.include_embeddings,
        min_score: (o.min_score != 0.0).then_some(o.min_score),
    }
}

fn kind_to_pb(k: Option<ImageErrorKind>) -> pb::ErrorKind {
    match k {
        None => pb::ErrorKind::Overloaded,
        Some(ImageErrorKind::Empty) => pb::ErrorKind::Empty,
        Some(ImageErrorKind::TooLarge) => pb::ErrorKind::TooLarge,
        Some(ImageErrorKind::UnsupportedFormat) => pb::ErrorKind::UnsupportedFormat,
        Some(ImageErrorKind::Corrupt) => pb::ErrorKind::Corrupt,
        Some(ImageErrorKind::LimitsExceeded) => pb::ErrorKind::LimitsExceeded,
        Some(ImageErrorKind::Internal) => pb::ErrorKind::Internal,
    }
}

/// Converts a service report to its protobuf form.
pub fn report_to_pb(r: ImageReport, include_embeddings: bool) -> pb::ImageResult {
    match r.result {
        Ok(AnalyzedImage {
            width,
            height,
            faces,
        }) => pb::ImageResult {
            id: r.id,
            width,
            height,
            faces: faces
                .into_iter()
                .map(|f| {
                    let d = f.detection;
                    let q = f.quality;
                    pb::Face {
                        r#box: Some(pb::Box {
                            x1: d.bbox[0],
                            y1: d.bbox[1],
                            x2: d.bbox[2],
                            y2: d.bbox[3],
                        }),
                        landmarks: d
                            .landmarks
                            .iter()
                            .map(|p| pb::Point { x: p[0], y: p[1] })
                            .collect(),
                        score: d.score,
                        quality: Some(pb::Quality {
                            face_size: q.face_size,
                            sharpness: q.sharpness,
                            too_small: q.too_small,
                            too_blurry: q.too_blurry,
                            identifiable: q.identifiable,
                        }),
                        embedding: if include_embeddings {
                            f.embedding
                        } else {
                            Vec::new()
                        },
                    }
                })
                .collect(),
            error: None,
        },
        Err(ImageFailure { kind, message }) => pb::ImageResult {
            id: r.id,
            width: 0,
            height: 0,
            faces: Vec::new(),
            error: Some(pb::ImageError {
                kind: kind_to_pb(kind) as i32,
                message,
            }),
        },
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<pb::AnalyzeStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Matcher for GrpcMatcher {
    async fn analyze(
        &self,
        request: Request<pb::AnalyzeRequest>,
    ) -> Result<Response<pb::AnalyzeResponse>, Status> {
        let req = request.into_inner();
        let opts = options(req.options);
        let images = req
            .images
            .into_iter()
            .map(|i| ImageInput {
                id: i.id,
                data: i.data,
            })
            .collect();
        match self.svc.analyze(images, opts).await {
            Ok(reports) => {
                self.count("Analyze", tonic::Code::Ok);
                Ok(Response::new(pb::AnalyzeResponse {
                    results: reports
                        .into_iter()
                        .map(|r| report_to_pb(r, opts.include_embeddings))
                        .collect(),
                }))
            }
            Err(e) => {
                let status = Status::from(e);
                self.count("Analyze", status.code());
                Err(status)
            }
        }
    }

    type AnalyzeStreamStream = ResponseStream;

    async fn analyze_stream(
        &self,
        request: Request<Streaming<pb::AnalyzeStreamRequest>>,
    ) -> Result<Response<Self::AnalyzeStreamStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) =
            mpsc::channel::<Result<pb::AnalyzeStreamResponse, Status>>(self.max_in_flight);
        let svc = self.svc.clone();
        let limit = Arc::new(Semaphore::new(self.max_in_flight));
        let this = self.clone();
        tokio::spawn(async move {
            let mut opts: Option<AnalyzeOptions> = None;
            let mut first = true;
            let mut code = tonic::Code::Ok;
            while let Some(msg) = inbound.next().await {
                let msg = match msg {
                    Ok(m) => m,
                    Err(status) => {
                        code = status.code();
                        let _ = tx.send(Err(status)).await;
                        break;
                    }
                };
                if first {
                    let o = options(msg.options);
                    if let Err(e) = o.validate() {
                        let status = Status::from(e);
                        code = status.code();
                        let _ = tx.send(Err(status)).await;
                        break;
                    }
                    opts = Some(o);
                    first = false;
                } else if msg.options.is_some() {
                    let status = Status::invalid_argument(
                        "options may only be set on the first message of a stream",
                    );
                    code = status.code();
                    let _ = tx.send(Err(status)).await;
                    break;
                }
                let Some(image) = msg.image else {
                    continue;
                };
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    break;
                };
                let o = opts.unwrap_or_default();
                let svc = svc.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let report = svc
                        .analyze_waiting(
                            ImageInput {
                                id: image.id,
                                data: image.data,
                            },
                            o,
                        )
                        .await;
                    let res = pb::AnalyzeStreamResponse {
                        result: Some(report_to_pb(report, o.include_embeddings)),
                    };
                    let _ = tx.send(Ok(res)).await;
                    drop(permit);
                });
            }
            this.count("AnalyzeStream", code);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
