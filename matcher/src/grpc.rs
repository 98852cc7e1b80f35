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
use crate::error::MatcherError;
use crate::service::{
    AnalyzeOptions, FaceRef, ImageFailure, ImageInput, ImageReport, MatcherService, SuggestReport,
};

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

impl GrpcMatcher {
    fn respond<T>(&self, method: &str, r: Result<T, MatcherError>) -> Result<Response<T>, Status> {
        match r {
            Ok(v) => {
                self.count(method, tonic::Code::Ok);
                Ok(Response::new(v))
            }
            Err(e) => {
                let status = Status::from(e);
                self.count(method, status.code());
                Err(status)
            }
        }
    }
}

fn candidate_to_pb(c: likeness_gallery::Candidate) -> pb::Candidate {
    pb::Candidate {
        person_id: c.person.to_string(),
        score: c.score,
        template_id: c.template,
    }
}

fn suggest_to_pb(r: SuggestReport, include_embeddings: bool) -> pb::SuggestResponse {
    let (image, faces) = match r.image {
        Err(e) => (
            report_to_pb(
                ImageReport {
                    id: r.id,
                    result: Err(e),
                },
                false,
            ),
            Vec::new(),
        ),
        Ok((width, height)) => {
            let faces: Vec<_> = r.faces;
            let img = pb::ImageResult {
                id: r.id,
                width,
                height,
                faces: Vec::new(),
                error: None,
            };
            let out = faces
                .into_iter()
                .map(|s| {
                    let wrapped = report_to_pb(
                        ImageReport {
                            id: String::new(),
                            result: Ok(AnalyzedImage {
                                width,
                                height,
                                faces: vec![s.face],
                            }),
                        },
                        include_embeddings,
                    );
                    pb::FaceSuggestion {
                        face: wrapped.faces.into_iter().next(),
                        person_id: s.person.map(|p| p.to_string()).unwrap_or_default(),
                        score: s.score,
                        candidates: s.candidates.into_iter().map(candidate_to_pb).collect(),
                    }
                })
                .collect();
            (img, out)
        }
    };
    pb::SuggestResponse {
        image: Some(image),
        faces,
    }
}

fn code_name(c: tonic::Code) -> &'static str {
    match c {
        tonic::Code::Ok => "ok",
        tonic::Code::InvalidArgument => "invalid_argument",
        tonic::Code::ResourceExhausted => "resource_exhausted",
        tonic::Code::Unavailable => "unavailable",
        tonic::Code::Cancelled => "cancelled",
        tonic::Code::NotFound => "not_found",
        tonic::Code::FailedPrecondition => "failed_precondition",
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

    async fn enroll(
        &self,
        request: Request<pb::EnrollRequest>,
    ) -> Result<Response<pb::EnrollResponse>, Status> {
        let r = request.into_inner();
        let faces = r
            .faces
            .into_iter()
            .map(|f| {
                let b = f.r#box.unwrap_or_default();
                FaceRef {
                    image: f.image,
                    bbox: [b.x1, b.y1, b.x2, b.y2],
                }
            })
            .collect();
        let templates = r.templates.into_iter().map(|t| t.values).collect();
        let res = self
            .svc
            .enroll(&r.tenant_id, &r.person_id, templates, faces)
            .await
            .map(|ids| pb::EnrollResponse { template_ids: ids });
        self.respond("Enroll", res)
    }

    async fn remove_person(
        &self,
        request: Request<pb::RemovePersonRequest>,
    ) -> Result<Response<pb::RemoveResponse>, Status> {
        let r = request.into_inner();
        let res = self
            .svc
            .remove_person(&r.tenant_id, &r.person_id)
            .await
            .map(|n| pb::RemoveResponse { removed: n as u32 });
        self.respond("RemovePerson", res)
    }

    async fn remove_templates(
        &self,
        request: Request<pb::RemoveTemplatesRequest>,
    ) -> Result<Response<pb::RemoveResponse>, Status> {
        let r = request.into_inner();
        let res = self
            .svc
            .remove_templates(&r.tenant_id, r.template_ids)
            .await
            .map(|n| pb::RemoveResponse { removed: n as u32 });
        self.respond("RemoveTemplates", res)
    }

    async fn identify(
        &self,
        request: Request<pb::IdentifyRequest>,
    ) -> Result<Response<pb::IdentifyResponse>, Status> {
        let r = request.into_inner();
        let queries = r.queries.into_iter().map(|q| q.values).collect();
        let res = self
            .svc
            .identify(&r.tenant_id, queries, r.k, r.threshold)
            .await
            .map(|all| pb::IdentifyResponse {
                results: all
                    .into_iter()
                    .map(|cs| pb::Identification {
                        candidates: cs.into_iter().map(candidate_to_pb).collect(),
                    })
                    .collect(),
            });
        self.respond("Identify", res)
    }

    async fn suggest(
        &self,
        request: Request<pb::SuggestRequest>,
    ) -> Result<Response<pb::SuggestResponse>, Status> {
        let r = request.into_inner();
        let opts = options(r.options);
        let Some(image) = r.image else {
            return self.respond(
                "Suggest",
                Err(MatcherError::InvalidArgument("image is required".into())),
            );
        };
        let res = self
            .svc
            .suggest(
                &r.tenant_id,
                ImageInput {
                    id: image.id,
                    data: image.data,
                },
                opts,
                r.k,
                r.threshold,
            )
            .await
            .map(|rep| suggest_to_pb(rep, opts.include_embeddings));
        self.respond("Suggest", res)
    }

    async fn tenant_stats(
        &self,
        request: Request<pb::TenantStatsRequest>,
    ) -> Result<Response<pb::TenantStatsResponse>, Status> {
        let r = request.into_inner();
        let res = self
            .svc
            .tenant_stats(&r.tenant_id)
            .await
            .map(|s| pb::TenantStatsResponse {
                templates: s.templates,
                persons: s.persons,
                search: s.search.to_owned(),
                log_records: s.log_records,
                disk_bytes: s.disk_bytes,
                memory_bytes: s.memory_bytes,
            });
        self.respond("TenantStats", res)
    }

    async fn drop_tenant(
        &self,
        request: Request<pb::DropTenantRequest>,
    ) -> Result<Response<pb::DropTenantResponse>, Status> {
        let r = request.into_inner();
        let res = self
            .svc
            .drop_tenant(&r.tenant_id)
            .await
            .map(|existed| pb::DropTenantResponse { existed });
        self.respond("DropTenant", res)
    }
}
