//! Face verification metrics: the LFW-style k-fold protocol (choose the threshold with the
//! best accuracy on k-1 folds, measure it on the held-out fold), TAR at a given FAR, a seeded
//! random generator for sampling pairs, and cosine similarity.

use serde::Serialize;

/// A small deterministic random generator (SplitMix64): the same seed gives the same pairs and
/// folds on every machine and with every version of every dependency.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`); the bias of the multiply-shift method is below 2^-32 for
    /// the sizes used here.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// Cosine similarity of two vectors (their dot product divided by both norms; 0 when either is
/// zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        dot += f64::from(x) * f64::from(y);
        na += f64::from(x) * f64::from(x);
        nb += f64::from(y) * f64::from(y);
    }
    if na <= 0.0 || nb <= 0.0 {
        0.0
    } else {
        (dot / (na.sqrt() * nb.sqrt())) as f32
    }
}

/// A scored pair: its similarity and whether it shows one person twice.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scored {
    /// Cosine similarity.
    pub score: f32,
    /// Ground truth: the same person.
    pub same: bool,
}

/// Accuracy of the decision `score >= threshold` means "same".
pub fn accuracy_at(pairs: &[Scored], threshold: f32) -> f64 {
    if pairs.is_empty() {
        return 0.0;
    }
    let ok = pairs
        .iter()
        .filter(|p| (p.score >= threshold) == p.same)
        .count();
    ok as f64 / pairs.len() as f64
}

/// The threshold with the best accuracy on `pairs`, and that accuracy. Candidates are the
/// midpoints between consecutive distinct scores (and one below the lowest and one above the
/// highest); among equally good candidates the middle one is taken, so the threshold sits in the
/// middle of the best plateau rather than on its edge.
pub fn best_threshold(pairs: &[Scored]) -> (f32, f64) {
    if pairs.is_empty() {
        return (0.0, 0.0);
    }
    let mut sorted: Vec<Scored> = pairs.to_vec();
    sorted.sort_by(|a, b| b.score.total_cmp(&a.score));
    let n = sorted.len();
    let total_diff = sorted.iter().filter(|p| !p.same).count();
    // Threshold above everything: all predicted "different".
    let mut correct = total_diff;
    let mut best = correct;
    let mut cands: Vec<f32> = vec![sorted[0].score + 1e-3];
    let mut i = 0;
    while i < n {
        // Move every pair with this score to the "same" side at once (ties cannot be split).
        let s = sorted[i].score;
        while i < n && sorted[i].score == s {
            if sorted[i].same {
                correct += 1;
            } else {
                correct -= 1;
            }
            i += 1;
        }
        let t = if i < n {
            (s + sorted[i].score) / 2.0
        } else {
            s - 1e-3
        };
        if correct > best {
            best = correct;
            cands.clear();
            cands.push(t);
        } else if correct == best {
            cands.push(t);
        }
    }
    let t = cands[cands.len() / 2];
    (t, best as f64 / n as f64)
}

/// The threshold that maximises balanced accuracy, `(TAR + TNR) / 2`, over all `genuine` and
/// `impostor` scores (each class weighted by its size, as in a balanced pair set), and that
/// balanced accuracy. Uses every pair, so it does not depend on a sample of impostors.
pub fn best_balanced_threshold(genuine: &[f32], impostor: &[f32]) -> (f32, f64) {
    if genuine.is_empty() || impostor.is_empty() {
        return (0.0, 0.0);
    }
    let (wg, wi) = (1.0 / genuine.len() as f64, 1.0 / impostor.len() as f64);
    let mut all: Vec<(f32, bool)> = genuine
        .iter()
        .map(|&s| (s, true))
        .chain(impostor.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    // Threshold above everything: TAR 0, TNR 1.
    let (mut tar, mut tnr) = (0.0f64, 1.0f64);
    let mut best = (all[0].0 + 1e-3, 0.5);
    let mut i = 0;
    while i < all.len() {
        let s = all[i].0;
        while i < all.len() && all[i].0 == s {
            if all[i].1 {
                tar += wg;
            } else {
                tnr -= wi;
            }
            i += 1;
        }
        let t = if i < all.len() {
            (s + all[i].0) / 2.0
        } else {
            s - 1e-3
        };
        let acc = (tar + tnr) / 2.0;
        if acc > best.1 + 1e-12 {
            best = (t, acc);
        }
    }
    best
}

/// Fold numbers `0..k` for `labels`, stratified: each class is shuffled and dealt round-robin,
/// so every fold has the same share of same and different pairs (within one).
pub fn stratified_folds(labels: &[bool], k: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let mut folds = vec![0; labels.len()];
    for class in [true, false] {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rng.shuffle(&mut idx);
        for (r, i) in idx.into_iter().enumerate() {
            folds[i] = r % k.max(1);
        }
    }
    folds
}

/// The result of a k-fold evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KFold {
    /// Number of folds.
    pub folds: usize,
    /// Accuracy on each held-out fold.
    pub fold_accuracy: Vec<f64>,
    /// Threshold chosen on the other folds, for each held-out fold.
    pub fold_threshold: Vec<f32>,
    /// Mean held-out accuracy.
    pub mean_accuracy: f64,
    /// Standard deviation of the held-out accuracies (population, as the LFW scripts of
    /// InsightFace compute it with `np.std`).
    pub std_accuracy: f64,
    /// Mean of the chosen thresholds.
    pub mean_threshold: f32,
}

/// LFW protocol: for each fold, the best threshold on the other folds is applied to it.
pub fn kfold(pairs: &[Scored], folds: &[usize], k: usize) -> KFold {
    let mut fold_accuracy = Vec::with_capacity(k);
    let mut fold_threshold = Vec::with_capacity(k);
    for f in 0..k {
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for (p, &fold) in pairs.iter().zip(folds) {
            if fold == f {
                test.push(*p);
            } else {
                train.push(*p);
            }
        }
        let (t, _) = best_threshold(&train);
        fold_threshold.push(t);
        fold_accuracy.push(accuracy_at(&test, t));
    }
    let mean = fold_accuracy.iter().sum::<f64>() / k.max(1) as f64;
    let var = fold_accuracy
        .iter()
        .map(|a| (a - mean) * (a - mean))
        .sum::<f64>()
        / k.max(1) as f64;
    let mean_threshold =
        (fold_threshold.iter().map(|&t| f64::from(t)).sum::<f64>() / k.max(1) as f64) as f32;
    KFold {
        folds: k,
        fold_accuracy,
        fold_threshold,
        mean_accuracy: mean,
        std_accuracy: var.sqrt(),
        mean_threshold,
    }
}

/// True accept rate at a false accept rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TarAtFar {
    /// The FAR asked for.
    pub target_far: f64,
    /// The lowest threshold whose FAR does not exceed the target (`score > threshold` accepts).
    pub threshold: f32,
    /// FAR actually reached at that threshold.
    pub far: f64,
    /// TAR at that threshold.
    pub tar: f64,
    /// Genuine (same-person) pairs.
    pub genuine: usize,
    /// Impostor (different-person) pairs.
    pub impostors: usize,
}

/// TAR at `target_far`: the threshold is the impostor score with at most `target_far` of the
/// impostors strictly above it.
pub fn tar_at_far(genuine: &[f32], impostor: &[f32], target_far: f64) -> TarAtFar {
    let mut imp: Vec<f32> = impostor.to_vec();
    imp.sort_by(|a, b| b.total_cmp(a));
    let allowed = (target_far * imp.len() as f64).floor() as usize;
    let threshold = imp.get(allowed).copied().unwrap_or(f32::NEG_INFINITY);
    let fa = imp.iter().filter(|&&s| s > threshold).count();
    let ta = genuine.iter().filter(|&&s| s > threshold).count();
    TarAtFar {
        target_far,
        threshold,
        far: if imp.is_empty() {
            0.0
        } else {
            fa as f64 / imp.len() as f64
        },
        tar: if genuine.is_empty() {
            0.0
        } else {
            ta as f64 / genuine.len() as f64
        },
        genuine: genuine.len(),
        impostors: imp.len(),
    }
}

/// Rates at one threshold (`score >= threshold` accepts).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    /// The threshold.
    pub threshold: f32,
    /// Share of genuine pairs accepted.
    pub tar: f64,
    /// Share of impostor pairs accepted.
    pub far: f64,
    /// Genuine pairs rejected.
    pub false_rejects: usize,
    /// Impostor pairs accepted.
    pub false_accepts: usize,
}

/// TAR and FAR at `threshold`.
pub fn rates_at(genuine: &[f32], impostor: &[f32], threshold: f32) -> Rates {
    let ta = genuine.iter().filter(|&&s| s >= threshold).count();
    let fa = impostor.iter().filter(|&&s| s >= threshold).count();
    let share = |k: usize, n: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    Rates {
        threshold,
        tar: share(ta, genuine.len()),
        far: share(fa, impostor.len()),
        false_rejects: genuine.len() - ta,
        false_accepts: fa,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(score: f32, same: bool) -> Scored {
        Scored { score, same }
    }

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..1000 {
            let x = a.below(13);
            assert_eq!(x, b.below(13));
            assert!(x < 13);
        }
        let mut v: Vec<u32> = (0..100).collect();
        a.shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(v, sorted);
    }

    #[test]
    fn cosine_basics() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-6);
        assert!((cosine(&[1.0, 1.0], &[-1.0, -1.0]) + 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }

    #[test]
    fn best_threshold_separates_separable_scores() {
        let pairs = [
            s(0.9, true),
            s(0.8, true),
            s(0.6, true),
            s(0.2, false),
            s(0.1, false),
            s(-0.1, false),
        ];
        let (t, acc) = best_threshold(&pairs);
        assert_eq!(acc, 1.0);
        assert!((t - 0.4).abs() < 1e-6, "{t}");
        assert_eq!(accuracy_at(&pairs, t), 1.0);
    }

    #[test]
    fn best_threshold_with_overlap() {
        // One impostor above one genuine: the best is 5/6 correct.
        let pairs = [
            s(0.9, true),
            s(0.7, false),
            s(0.6, true),
            s(0.5, true),
            s(0.2, false),
            s(0.1, false),
        ];
        let (t, acc) = best_threshold(&pairs);
        assert!((acc - 5.0 / 6.0).abs() < 1e-9);
        assert!((accuracy_at(&pairs, t) - acc).abs() < 1e-9);
    }

    #[test]
    fn kfold_on_separable_data_is_perfect() {
        let mut pairs = Vec::new();
        for i in 0..50 {
            pairs.push(s(0.5 + i as f32 / 200.0, true));
            pairs.push(s(-0.2 + i as f32 / 200.0, false));
        }
        let labels: Vec<bool> = pairs.iter().map(|p| p.same).collect();
        let folds = stratified_folds(&labels, 10, &mut SplitMix64::new(1));
        for f in 0..10 {
            let same = (0..pairs.len())
                .filter(|&i| folds[i] == f && labels[i])
                .count();
            assert_eq!(same, 5);
        }
        let r = kfold(&pairs, &folds, 10);
        assert_eq!(r.mean_accuracy, 1.0);
        assert_eq!(r.std_accuracy, 0.0);
        assert!(r.mean_threshold > 0.045 && r.mean_threshold < 0.5);
    }

    #[test]
    fn balanced_threshold_weights_the_classes() {
        // Few genuine, many impostors: plain accuracy would favour rejecting everything.
        let genuine = [0.6, 0.5, 0.4];
        let impostor: Vec<f32> = (0..100).map(|i| -0.5 + i as f32 / 200.0).collect();
        let (t, acc) = best_balanced_threshold(&genuine, &impostor);
        assert!(t > 0.0 && t < 0.4, "{t}");
        assert!((acc - 1.0).abs() < 1e-9);
    }

    #[test]
    fn tar_at_far_counts() {
        let impostor: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        let genuine = [0.995, 0.985, 0.5, 0.2];
        let r = tar_at_far(&genuine, &impostor, 0.01);
        // One impostor (0.99) may be above the threshold: the threshold is 0.98.
        assert!((r.threshold - 0.98).abs() < 1e-6);
        assert!((r.far - 0.01).abs() < 1e-9);
        assert!((r.tar - 0.5).abs() < 1e-9);
        let r = rates_at(&genuine, &impostor, 0.5);
        assert_eq!(r.false_rejects, 1);
        assert_eq!(r.false_accepts, 50);
    }
}
