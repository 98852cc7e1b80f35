//! Assignment of persons to the faces of one photo: one face gets at most one person and one
//! person at most one face, maximising the total similarity (the Hungarian algorithm over the
//! face x person score matrix; pairs below the threshold are never assigned).

/// Returns, for every face (row), the assigned column or `None`.
///
/// `scores[f][p]` is the similarity of face `f` to person `p`; pairs below `threshold` are
/// forbidden.
#[allow(clippy::needless_range_loop)] // index arithmetic of the Hungarian algorithm
pub fn assign(scores: &[Vec<f32>], threshold: f32) -> Vec<Option<usize>> {
    let rows = scores.len();
    let cols = scores.iter().map(Vec::len).max().unwrap_or(0);
    if rows == 0 || cols == 0 {
        return vec![None; rows];
    }
    // Square cost matrix; a forbidden or padded pair costs 0 (= leaving the face unassigned),
    // an allowed pair costs -score (< 0 for positive scores).
    let n = rows.max(cols);
    let cost = |r: usize, c: usize| -> f64 {
        match scores.get(r).and_then(|row| row.get(c)) {
            Some(&s) if s >= threshold => -(f64::from(s) + 1.0),
            _ => 0.0,
        }
    };
    // Hungarian algorithm (Jonker-Volgenant style potentials), O(n^3).
    let inf = f64::INFINITY;
    let mut u = vec![0f64; n + 1];
    let mut v = vec![0f64; n + 1];
    let mut p = vec![0usize; n + 1]; // p[col] = row (1-based), 0 = none
    let mut way = vec![0usize; n + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        let mut minv = vec![inf; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = inf;
            let mut j1 = 0usize;
            for j in 1..=n {
                if !used[j] {
                    let cur = cost(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut out = vec![None; rows];
    for j in 1..=n {
        let i = p[j];
        if i >= 1 && i <= rows && j <= cols && cost(i - 1, j - 1) < 0.0 {
            out[i - 1] = Some(j - 1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_person_per_photo_and_total_is_maximised() {
        // Both faces prefer person 0; independent argmax would give it twice.
        let s = vec![vec![0.9, 0.8], vec![0.85, 0.3]];
        assert_eq!(assign(&s, 0.27), vec![Some(1), Some(0)]);
    }

    #[test]
    fn below_threshold_stays_unknown() {
        let s = vec![vec![0.2, 0.1], vec![0.5, 0.26]];
        assert_eq!(assign(&s, 0.27), vec![None, Some(0)]);
    }

    #[test]
    fn more_faces_than_persons() {
        let s = vec![vec![0.6], vec![0.7], vec![0.4]];
        assert_eq!(assign(&s, 0.27), vec![None, Some(0), None]);
        assert_eq!(assign(&[], 0.27), Vec::<Option<usize>>::new());
    }
}
