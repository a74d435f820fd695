//! The background scavenger's pacing: Go's proportional-integral controller
//! that holds the scavenger at about 1% of the CPU time (Go's
//! `piController` and `scavengerState.sleep`).
//!
//! The scavenger works for a short while (at least 1 ms), then sleeps for
//! `worked / sleep_ratio`. After each sleep the controller compares the CPU
//! fraction actually used, `worked / ((slept + worked) * procs)`, against
//! the 1% set point and adjusts `sleep_ratio`. All times are nanoseconds in
//! `f64`, as in Go.

/// A PI controller with anti-windup, output clamped to `[min, max]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PiController {
    /// Proportional gain.
    kp: f64,
    /// Integral time constant (ns).
    ti: f64,
    /// Anti-windup tracking time constant (ns).
    tt: f64,
    /// Output bounds.
    min: f64,
    max: f64,
    /// The integral term.
    err_integral: f64,
}

impl PiController {
    /// Go's scavenger tuning: kp = 0.3375, ti = 3.2e6 ns, tt = 1e9 ns,
    /// output in [0.001, 1000].
    pub(crate) const fn scavenger() -> Self {
        PiController {
            kp: 0.3375,
            ti: 3.2e6,
            tt: 1e9,
            min: 0.001,
            max: 1000.0,
            err_integral: 0.0,
        }
    }

    /// The next output for `input` against `setpoint` over `period` ns, or
    /// `None` (and a reset) if the arithmetic overflowed.
    pub(crate) fn next(&mut self, input: f64, setpoint: f64, period: f64) -> Option<f64> {
        let err = setpoint - input;
        let raw = self.kp * err + self.err_integral;
        if !raw.is_finite() {
            self.err_integral = 0.0;
            return None;
        }
        let output = raw.clamp(self.min, self.max);
        if self.ti != 0.0 && self.tt != 0.0 {
            // The second term bleeds off the integral while the output is
            // clamped, so it does not wind up during long saturation.
            self.err_integral +=
                (self.kp * period / self.ti) * err + (period / self.tt) * (output - raw);
            if !self.err_integral.is_finite() {
                self.err_integral = 0.0;
                return None;
            }
        }
        Some(output)
    }
}

/// The sleep ratio the scavenger starts with and falls back to after a
/// controller failure (Go's `startingScavSleepRatio`).
pub(crate) const START_SLEEP_RATIO: f64 = 0.001;
/// The least work the scavenger does between sleeps (Go's
/// `minScavWorkTime`), in ns.
pub(crate) const MIN_WORK_NS: f64 = 1e6;
/// The CPU share the scavenger aims for, as a fraction of all CPUs (Go's
/// `scavengePercent`).
pub(crate) const CPU_FRACTION: f64 = 0.01;
/// How long the controller rests after a failure, in ns.
const COOLDOWN_NS: f64 = 5e9;

/// The scavenger's sleep pacing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pacer {
    controller: PiController,
    sleep_ratio: f64,
    cooldown: f64,
    procs: f64,
}

impl Pacer {
    /// A pacer for a machine with `procs` CPUs.
    pub(crate) fn new(procs: usize) -> Self {
        Pacer {
            controller: PiController::scavenger(),
            sleep_ratio: START_SLEEP_RATIO,
            cooldown: 0.0,
            procs: procs.max(1) as f64,
        }
    }

    /// The work time to account for `worked` ns of work (at least
    /// [`MIN_WORK_NS`]) and how long to sleep after it, in ns.
    pub(crate) fn plan(&self, worked: f64) -> (f64, f64) {
        let worked = worked.max(MIN_WORK_NS);
        (worked, worked / self.sleep_ratio)
    }

    /// Feeds back one work/sleep cycle: `worked` as returned by
    /// [`plan`](Self::plan), `slept` as measured.
    pub(crate) fn update(&mut self, worked: f64, slept: f64) {
        if self.cooldown > 0.0 {
            self.cooldown -= slept + worked;
            return;
        }
        let period = slept + worked;
        let used = worked / (period * self.procs);
        match self.controller.next(used, CPU_FRACTION, period) {
            Some(ratio) => self.sleep_ratio = ratio,
            None => {
                self.sleep_ratio = START_SLEEP_RATIO;
                self.cooldown = COOLDOWN_NS;
            }
        }
    }

    /// The current ratio of work time to sleep time.
    #[cfg(test)]
    pub(crate) fn sleep_ratio(&self) -> f64 {
        self.sleep_ratio
    }
}
