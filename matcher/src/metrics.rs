//! Prometheus metrics of the matcher, served on `/metrics`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// All metrics of one matcher process.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    /// gRPC requests by method and outcome.
    pub requests: IntCounterVec,
    /// Images processed (successfully or not).
    pub images: IntCounter,
    /// Faces found.
    pub faces: IntCounter,
    /// Per-image errors by kind.
    pub errors: IntCounterVec,
    /// Images per inference batch.
    pub batch_size: Histogram,
    /// Images queued or in flight.
    pub queue_depth: IntGauge,
    /// Per-stage latency in seconds (decode per image; detect/align/embed per batch on the CPU
    /// backend, `device` per batch on the CUDA backend, which runs the three stages as one call).
    pub stage_seconds: HistogramVec,
    /// End-to-end latency of one image from submission to result.
    pub image_seconds: Histogram,
    /// What the CPU pipeline's detection plan did, by event: `detail_view_run`,
    /// `detail_view_skipped` (large photos whose whole-image view gave no hint of small faces),
    /// `face_refined` (faces located again in a crop), `decoded_reduced` (JPEGs decoded at a
    /// reduced DCT scale).
    pub plan: IntCounterVec,
}

/// The events of [`Metrics::plan`].
pub const PLAN_EVENTS: [&str; 4] = [
    "detail_view_run",
    "detail_view_skipped",
    "face_refined",
    "decoded_reduced",
];

fn buckets() -> Vec<f64> {
    vec![
        0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
    ]
}

impl Metrics {
    /// Creates and registers the metrics in a fresh registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "likeness_matcher_requests_total",
                "gRPC requests by method and outcome",
            ),
            &["method", "code"],
        )?;
        let images = IntCounter::new("likeness_matcher_images_total", "Images processed")?;
        let faces = IntCounter::new("likeness_matcher_faces_total", "Faces found")?;
        let errors = IntCounterVec::new(
            Opts::new(
                "likeness_matcher_image_errors_total",
                "Per-image errors by kind",
            ),
            &["kind"],
        )?;
        let batch_size = Histogram::with_opts(
            HistogramOpts::new("likeness_matcher_batch_size", "Images per inference batch")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]),
        )?;
        let queue_depth = IntGauge::new(
            "likeness_matcher_queue_depth",
            "Images queued or in flight in the batcher",
        )?;
        let stage_seconds = HistogramVec::new(
            HistogramOpts::new(
                "likeness_matcher_stage_seconds",
                "Latency per pipeline stage (decode per image; detect, align, embed per batch on the CPU backend; device per batch on the CUDA backend)",
            )
            .buckets(buckets()),
            &["stage"],
        )?;
        let image_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "likeness_matcher_image_seconds",
                "Latency of one image from submission to result",
            )
            .buckets(buckets()),
        )?;
        let plan = IntCounterVec::new(
            Opts::new(
                "likeness_matcher_detection_plan_total",
                "What the CPU pipeline's detection plan did, by event (detail_view_run, detail_view_skipped, face_refined, decoded_reduced)",
            ),
            &["event"],
        )?;
        for e in PLAN_EVENTS {
            plan.with_label_values(&[e]);
        }
        registry.register(Box::new(plan.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(images.clone()))?;
        registry.register(Box::new(faces.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(batch_size.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(stage_seconds.clone()))?;
        registry.register(Box::new(image_seconds.clone()))?;
        Ok(Self {
            registry,
            requests,
            images,
            faces,
            errors,
            batch_size,
            queue_depth,
            stage_seconds,
            image_seconds,
            plan,
        })
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let enc = TextEncoder::new();
        if let Err(e) = enc.encode(&self.registry.gather(), &mut buf) {
            return format!("# error encoding metrics: {e}\n");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
