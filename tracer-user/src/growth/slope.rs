//! The Theil–Sen estimator: the slope of a series is the median of the
//! slopes between every pair of its points, so up to 29% of the points can
//! be anything (a cache filling at the start, a burst) without moving it.
//! Its 95% interval comes from the distribution of Kendall's S (Sen 1968):
//! the slopes ranked (N ∓ 1.96·sqrt(n(n-1)(2n+5)/18)) / 2 among the N pairs.
//! That interval assumes independent deviations from the line; outstanding
//! counts wander (each sample is the last plus what changed), so read it as
//! a lower bound on the uncertainty.

/// A line fitted to a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// Change per unit of x.
    pub slope: f64,
    /// The 95% interval of the slope.
    pub low: f64,
    pub high: f64,
    /// The share of the series' variance the line explains (R², clamped to 0-1;
    /// 1 for a series the line goes through exactly).
    pub r2: f64,
}

/// Fits `y` against `x` (x strictly increasing); None with fewer than 2 points.
pub fn theil_sen(x: &[f64], y: &[f64]) -> Option<Fit> {
    let n = x.len().min(y.len());
    if n < 2 {
        return None;
    }
    let mut slopes = Vec::with_capacity(n * (n - 1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            let dx = x[j] - x[i];
            if dx > 0.0 {
                slopes.push((y[j] - y[i]) / dx);
            }
        }
    }
    if slopes.is_empty() {
        return None;
    }
    slopes.sort_unstable_by(f64::total_cmp);
    let slope = median_sorted(&slopes);
    let pairs = slopes.len() as f64;
    let nf = n as f64;
    let c = 1.96 * (nf * (nf - 1.0) * (2.0 * nf + 5.0) / 18.0).sqrt();
    let rank = |r: f64| slopes[(r.clamp(1.0, pairs) as usize) - 1];
    let (low, high) = (rank(((pairs - c) / 2.0).floor()), rank(((pairs + c) / 2.0).ceil() + 1.0));
    let mut offsets: Vec<f64> = (0..n).map(|i| y[i] - slope * x[i]).collect();
    offsets.sort_unstable_by(f64::total_cmp);
    let intercept = median_sorted(&offsets);
    let mean = y[..n].iter().sum::<f64>() / nf;
    let total: f64 = y[..n].iter().map(|v| (v - mean).powi(2)).sum();
    let residual: f64 = (0..n).map(|i| (y[i] - intercept - slope * x[i]).powi(2)).sum();
    let r2 = if total == 0.0 { f64::from(u8::from(residual == 0.0)) } else { (1.0 - residual / total).clamp(0.0, 1.0) };
    Some(Fit { slope, low: low.min(slope), high: high.max(slope), r2 })
}

fn median_sorted(v: &[f64]) -> f64 {
    let m = v.len() / 2;
    if !v.len().is_multiple_of(2) {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xs(n: usize) -> Vec<f64> {
        (0..n).map(|i| i as f64).collect()
    }

    #[test]
    fn a_straight_line_is_found_exactly() {
        let x = xs(30);
        let y: Vec<f64> = x.iter().map(|t| 5.0 + 1024.0 * t).collect();
        let f = theil_sen(&x, &y).unwrap();
        assert_eq!((f.slope, f.low, f.high, f.r2), (1024.0, 1024.0, 1024.0, 1.0));
    }

    #[test]
    fn a_cache_that_fills_then_holds_has_no_slope() {
        // 1 MiB in the first 5 of 60 samples, then steady.
        let x = xs(60);
        let y: Vec<f64> = x.iter().map(|&t| (t.min(5.0) / 5.0) * 1_048_576.0).collect();
        let f = theil_sen(&x, &y).unwrap();
        assert_eq!(f.slope, 0.0);
        assert_eq!(f.low, 0.0, "not even the low end of the interval grows");
    }

    #[test]
    fn outliers_do_not_move_it_and_noise_widens_the_interval() {
        let x = xs(40);
        // A steady leak of 10/s with a deterministic wobble and three wild samples.
        let mut y: Vec<f64> = x.iter().map(|&t| 10.0 * t + [0.0, 7.0, -5.0, 3.0][t as usize % 4]).collect();
        y[3] = 1e6;
        y[20] = -1e6;
        y[33] = 5e5;
        let f = theil_sen(&x, &y).unwrap();
        assert!((f.slope - 10.0).abs() < 0.5, "{f:?}");
        assert!(f.low <= f.slope && f.slope <= f.high && f.low < f.high && f.high - f.low < 3.0, "{f:?}");
    }

    #[test]
    fn too_little_is_nothing() {
        assert_eq!(theil_sen(&[1.0], &[2.0]), None);
        assert_eq!(theil_sen(&[1.0, 1.0], &[2.0, 3.0]), None);
    }
}
