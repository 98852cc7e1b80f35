//! The dynamic batcher: images from concurrent requests are gathered into inference batches
//! of up to `max_batch_images` or until `max_wait_us` has passed since the first image of the
//! batch arrived, and decoded by the inference thread that takes them (by default; one per
//! pipeline lane) or ahead of it on decode threads (`decode_threads` > 0); inference runs on
//! its own threads, never on the async executor. Admission is bounded by a semaphore of `queue_capacity`
//! permits, one per image, held until its result is delivered.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use likeness_models::{Face, Pipeline, RgbImage, StageTimings};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::config::BatcherConfig;
use crate::engine::DeviceEngine;
use crate::error::MatcherError;
use crate::metrics::Metrics;

/// The result of one image.
#[derive(Debug, Clone)]
pub struct AnalyzedImage {
    /// Width after EXIF orientation.
    pub width: u32,
    /// Height after EXIF orientation.
    pub height: u32,
    /// Faces found.
    pub faces: Vec<Face>,
}

/// Outcome of one image: its faces or the error that names the problem.
pub type ImageOutcome = Result<AnalyzedImage, likeness_models::Error>;

struct Job {
    bytes: Vec<u8>,
    min_score: Option<f32>,
    submitted: Instant,
    reply: oneshot::Sender<ImageOutcome>,
    _permit: OwnedSemaphorePermit,
}

struct Decoded {
    img: RgbImage,
    job: Job,
}

/// Handle to the batcher threads. Dropping it stops them once their queues drain.
pub struct Batcher {
    tx: Option<Sender<Job>>,
    permits: Arc<Semaphore>,
    capacity: usize,
    metrics: Metrics,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("capacity", &self.capacity)
            .field("available", &self.permits.available_permits())
            .finish()
    }
}

impl Batcher {
    /// Starts the decode and inference threads.
    pub fn start(
        pipeline: Arc<Pipeline>,
        mut device: Option<DeviceEngine>,
        cfg: &BatcherConfig,
        metrics: Metrics,
    ) -> Result<Self, MatcherError> {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let (dtx, drx) = crossbeam_channel::unbounded::<Decoded>();
        let mut threads = Vec::new();
        // Without decode threads the inference threads take the jobs and decode them (the
        // default on the CPU: no third thread competing for the cores); the device keeps one
        // decoding ahead.
        let decode_threads = match (cfg.decode_threads, &device) {
            (0, Some(_)) => 1,
            (n, _) => n,
        };
        let inline_decode = decode_threads == 0;
        for i in 0..decode_threads {
            let rx = rx.clone();
            let dtx = dtx.clone();
            let p = pipeline.clone();
            let m = metrics.clone();
            threads.push(spawn(format!("decode-{i}"), move || {
                decode_loop(&p, &rx, &dtx, &m)
            })?);
        }
        drop(dtx);
        let inference_threads = match (cfg.inference_threads, &device) {
            (0, Some(_)) => 1,
            (0, None) => pipeline.lanes(),
            (n, _) => n,
        };
        for i in 0..inference_threads {
            let drx = drx.clone();
            let p = pipeline.clone();
            let m = metrics.clone();
            let max = cfg.max_batch_images;
            let wait = Duration::from_micros(cfg.max_wait_us);
            // The device, if any, belongs to the first inference thread; the others (and
            // the first, for what the device cannot serve) run the CPU pipeline.
            let d = device.take();
            let jobs = inline_decode.then(|| rx.clone());
            threads.push(spawn(format!("infer-{i}"), move || {
                let decoder = p.clone();
                let mut engine = Engine { cpu: p, device: d };
                let plan = (max, wait, inference_threads);
                match jobs {
                    Some(jobs) => infer_loop(&mut engine, &jobs, plan, &m, |job| {
                        decode_job(&decoder, job, &m)
                    }),
                    None => infer_loop(&mut engine, &drx, plan, &m, Some),
                }
            })?);
        }
        Ok(Self {
            tx: Some(tx),
            permits: Arc::new(Semaphore::new(cfg.queue_capacity)),
            capacity: cfg.queue_capacity,
            metrics,
            threads,
        })
    }

    /// Reserves room for `n` images now, or fails with `Overloaded` when the queue is full.
    pub fn try_reserve(&self, n: usize) -> Result<Vec<OwnedSemaphorePermit>, MatcherError> {
        let n32 = u32::try_from(n)
            .map_err(|_| MatcherError::InvalidArgument("too many images".into()))?;
        let mut all = self
            .permits
            .clone()
            .try_acquire_many_owned(n32)
            .map_err(|_| {
                MatcherError::Overloaded(format!(
                    "queue full ({} of {} images in flight); retry later",
                    self.capacity - self.permits.available_permits(),
                    self.capacity
                ))
            })?;
        let mut out = Vec::with_capacity(n);
        for _ in 1..n {
            if let Some(p) = all.split(1) {
                out.push(p);
            }
        }
        out.push(all);
        self.metrics.queue_depth.add(n as i64);
        Ok(out)
    }

    /// Reserves room for one image, waiting while the queue is full (backpressure for streams).
    pub async fn reserve_wait(&self) -> Result<OwnedSemaphorePermit, MatcherError> {
        let p = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| MatcherError::ShuttingDown)?;
        self.metrics.queue_depth.inc();
        Ok(p)
    }

    /// Queues one image under a reservation; the receiver yields its outcome.
    pub fn submit(
        &self,
        bytes: Vec<u8>,
        min_score: Option<f32>,
        permit: OwnedSemaphorePermit,
    ) -> Result<oneshot::Receiver<ImageOutcome>, MatcherError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            bytes,
            min_score,
            submitted: Instant::now(),
            reply,
            _permit: permit,
        };
        self.tx
            .as_ref()
            .ok_or(MatcherError::ShuttingDown)?
            .send(job)
            .map_err(|_| MatcherError::ShuttingDown)?;
        Ok(rx)
    }

    /// Images queued or in flight.
    pub fn depth(&self) -> usize {
        self.capacity - self.permits.available_permits()
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.tx.take();
        self.permits.close();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, MatcherError> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(f)
        .map_err(|e| MatcherError::Io(format!("cannot start thread {name}: {e}")))
}

fn finish(job: Job, outcome: ImageOutcome, m: &Metrics) {
    m.images.inc();
    match &outcome {
        Ok(a) => m.faces.inc_by(a.faces.len() as u64),
        Err(e) => m.errors.with_label_values(&[e.image_kind().as_str()]).inc(),
    }
    m.image_seconds
        .observe(job.submitted.elapsed().as_secs_f64());
    // The caller may have gone away; its permit is released either way.
    let _ = job.reply.send(outcome);
    m.queue_depth.dec();
}

/// Decodes a job's image; a file that does not decode gets its error now.
fn decode_job(p: &Pipeline, mut job: Job, m: &Metrics) -> Option<Decoded> {
    let t = Instant::now();
    let bytes = std::mem::take(&mut job.bytes);
    let res = p.decode(&bytes);
    drop(bytes);
    m.stage_seconds
        .with_label_values(&["decode"])
        .observe(t.elapsed().as_secs_f64());
    match res {
        Ok(img) => {
            if img.is_reduced() {
                m.plan.with_label_values(&["decoded_reduced"]).inc();
            }
            Some(Decoded { img, job })
        }
        Err(e) => {
            finish(job, Err(e), m);
            None
        }
    }
}

fn decode_loop(p: &Pipeline, rx: &Receiver<Job>, out: &Sender<Decoded>, m: &Metrics) {
    while let Ok(job) = rx.recv() {
        if let Some(d) = decode_job(p, job, m)
            && let Err(crossbeam_channel::SendError(d)) = out.send(d)
        {
            finish(
                d.job,
                Err(likeness_models::Error::image(
                    likeness_models::ImageErrorKind::Internal,
                    "inference workers stopped",
                )),
                m,
            );
        }
    }
}

/// What one inference thread runs.
struct Engine {
    cpu: Arc<Pipeline>,
    device: Option<DeviceEngine>,
}

impl Engine {
    /// The faces of a group of images with the same `min_score`: on the device when it can
    /// serve them, else (or when the device fails) on the CPU.
    fn analyze(
        &mut self,
        imgs: &[&RgbImage],
        min_score: Option<f32>,
        m: &Metrics,
    ) -> Vec<Result<Vec<Face>, likeness_models::Error>> {
        if let Some(dev) = self.device.as_mut()
            && !dev.given_up()
            && dev.serves(min_score)
        {
            let t = Instant::now();
            match dev.analyze(imgs, min_score) {
                Ok(faces) => {
                    m.stage_seconds
                        .with_label_values(&["device"])
                        .observe(t.elapsed().as_secs_f64());
                    return faces.into_iter().map(Ok).collect();
                }
                Err(why) if dev.given_up() => tracing::error!(
                    "device batch failed: {why}; giving up the device after {} failures in a row, the CPU pipeline runs from now on",
                    crate::engine::MAX_FAILURES
                ),
                Err(why) => tracing::warn!("device batch failed: {why}; running it on the CPU"),
            }
        }
        let mut t = StageTimings::default();
        let results = self.cpu.analyze(imgs, min_score, &mut t);
        for (stage, d) in [("detect", t.detect), ("align", t.align), ("embed", t.embed)] {
            m.stage_seconds
                .with_label_values(&[stage])
                .observe(d.as_secs_f64());
        }
        for (event, n) in [
            ("detail_view_run", t.detail_run),
            ("detail_view_skipped", t.detail_skipped),
            ("face_refined", t.faces_refined),
        ] {
            m.plan.with_label_values(&[event]).inc_by(n);
        }
        results
    }
}

/// Gathers batches of `T` (decoded images, or jobs that `prepare` decodes) and runs them.
/// With `sharing` inference threads a batch takes at most its share of the images queued
/// when it starts, so that a burst is spread over the threads (and their lanes).
fn infer_loop<T>(
    p: &mut Engine,
    rx: &Receiver<T>,
    (max, wait, sharing): (usize, Duration, usize),
    m: &Metrics,
    prepare: impl Fn(T) -> Option<Decoded>,
) {
    let mut gathered: Vec<T> = Vec::with_capacity(max);
    let mut batch: Vec<Decoded> = Vec::with_capacity(max);
    while let Ok(first) = rx.recv() {
        gathered.push(first);
        let cap = if sharing > 1 {
            max.min(1 + rx.len() / sharing)
        } else {
            max
        };
        let deadline = Instant::now() + wait;
        while gathered.len() < cap {
            // Take what is already there without waiting, then wait until the deadline.
            match rx.try_recv() {
                Ok(d) => {
                    gathered.push(d);
                    continue;
                }
                Err(_) if wait.is_zero() => break,
                Err(_) => {}
            }
            match rx.recv_deadline(deadline) {
                Ok(d) => gathered.push(d),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        batch.extend(gathered.drain(..).filter_map(&prepare));
        if !batch.is_empty() {
            run_batch(p, &mut batch, m);
        }
    }
}

fn run_batch(p: &mut Engine, batch: &mut Vec<Decoded>, m: &Metrics) {
    m.batch_size.observe(batch.len() as f64);
    // Images asking for a different score threshold are run as separate groups.
    while !batch.is_empty() {
        let key = batch[0].job.min_score.map(f32::to_bits);
        let (group, rest): (Vec<Decoded>, Vec<Decoded>) = batch
            .drain(..)
            .partition(|d| d.job.min_score.map(f32::to_bits) == key);
        *batch = rest;
        let imgs: Vec<&RgbImage> = group.iter().map(|d| &d.img).collect();
        let results = p.analyze(&imgs, group[0].job.min_score, m);
        for (d, r) in group.into_iter().zip(results) {
            // The file's size: the pixels may be a reduced decode.
            let (w, h) = (d.img.source_width, d.img.source_height);
            drop(d.img);
            finish(
                d.job,
                r.map(|faces| AnalyzedImage {
                    width: w,
                    height: h,
                    faces,
                }),
                m,
            );
        }
    }
}
