//! What a refused boot does next: `veriroot.on-failure=` (which wins) or
//! `[boot] on-failure`, after `veriroot.failure-delay=` seconds that keep
//! the message on the console. Every action ends this boot: none of them
//! can continue into an unverified tree, so the choice is not a security
//! decision, and an appended (unsigned) argument may make it.

use std::fmt;
use std::time::Duration;

use crate::boot::cmdline::Cmdline;
use crate::text::escape;

pub const KARG: &str = "veriroot.on-failure";
pub const DELAY_KARG: &str = "veriroot.failure-delay";
/// Long enough to read a line of the console, short enough for a kiosk.
pub const DEFAULT_DELAY: Duration = Duration::from_secs(10);
/// The unit's `TimeoutStartSec=` leaves room for the watchdog plus this.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// systemd's emergency.target (the unit's `OnFailure=`); as PID 1 of a
    /// minimal initrd, which has no shell, the same as `Halt`.
    Emergency,
    PowerOff,
    /// Another try: with boot counting, systemd-boot counts it.
    Reboot,
    /// Stop with the message on the console, powered on.
    Halt,
}

impl Action {
    pub const NAMES: &'static str = "emergency, poweroff, reboot or halt";

    pub fn from_name(s: &str) -> Option<Action> {
        Some(match s {
            "emergency" => Action::Emergency,
            "poweroff" => Action::PowerOff,
            "reboot" => Action::Reboot,
            "halt" => Action::Halt,
            _ => return None,
        })
    }

    /// What the console says while it happens (`emergency`, for PID 1
    /// which has no shell, halts).
    pub fn doing(self) -> &'static str {
        match self {
            Action::PowerOff => "powering off",
            Action::Reboot => "rebooting",
            Action::Halt | Action::Emergency => "halting",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Emergency => "emergency",
            Action::PowerOff => "poweroff",
            Action::Reboot => "reboot",
            Action::Halt => "halt",
        }
    }
}

/// Who refused: the default action differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `/init` of a minimal initrd: power off (nothing else is there).
    Pid1,
    /// `veriroot setup-root` in a systemd initrd: emergency.target.
    SetupRoot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnFailure {
    pub action: Action,
    /// Waited before a power off, reboot or halt (not before emergency).
    pub delay: Duration,
    /// The action is a reboot because the boot loader counts this entry's
    /// tries (nobody chose another).
    pub for_boot_counting: bool,
}

impl OnFailure {
    /// The mode's default: power off as PID 1, emergency in a systemd
    /// initrd; a reboot in both when the boot loader counts tries
    /// (`counting`), so that the try counts and it can fall back.
    pub fn default_for(mode: Mode, counting: bool) -> OnFailure {
        OnFailure {
            action: match (mode, counting) {
                (_, true) => Action::Reboot,
                (Mode::Pid1, false) => Action::PowerOff,
                (Mode::SetupRoot, false) => Action::Emergency,
            },
            delay: DEFAULT_DELAY,
            for_boot_counting: counting,
        }
    }
}

impl OnFailure {
    /// The line said before the delay, e.g. `rebooting in 10 s
    /// (veriroot.on-failure=reboot)`.
    pub fn announcement(&self) -> String {
        format!(
            "{} in {} s ({KARG}={}{})",
            self.action.doing(),
            self.delay.as_secs(),
            self.action.name(),
            if self.for_boot_counting {
                ": systemd-boot counts this entry's tries"
            } else {
                ""
            }
        )
    }
}

/// A malformed `veriroot.on-failure=` or `veriroot.failure-delay=`: the
/// boot is refused for it (and ends with the mode's default action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnFailureError {
    Action(String),
    Delay(String),
}

impl fmt::Display for OnFailureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OnFailureError::Action(v) => {
                write!(f, "{KARG}={} is not one of {}", escape(v), Action::NAMES)
            }
            OnFailureError::Delay(v) => write!(
                f,
                "{DELAY_KARG}={} is not a number of seconds 0..={}",
                escape(v),
                MAX_DELAY.as_secs()
            ),
        }
    }
}

impl std::error::Error for OnFailureError {}

/// The policy for this boot: the command line's, else the configuration's,
/// else the mode's default (`counting`: the boot loader counts this
/// entry's tries). A malformed value comes back as the error beside the
/// policy to follow anyway (the default for what was malformed).
pub fn decide(
    cmdline: &Cmdline,
    configured: Option<Action>,
    mode: Mode,
    counting: bool,
) -> (OnFailure, Option<OnFailureError>) {
    let mut policy = OnFailure::default_for(mode, counting);
    let mut error = None;
    let choose = |policy: &mut OnFailure, a: Action| {
        policy.action = a;
        policy.for_boot_counting = false;
    };
    if let Some(a) = configured {
        choose(&mut policy, a);
    }
    // A bare flag says nothing the user could have meant: refused as "".
    if cmdline.flag(KARG) && cmdline.value(KARG).is_none() {
        error = Some(OnFailureError::Action(String::new()));
    }
    if let Some(v) = cmdline.value(KARG) {
        match Action::from_name(v) {
            Some(a) => choose(&mut policy, a),
            None => error = Some(OnFailureError::Action(v.to_owned())),
        }
    }
    if let Some(v) = cmdline.value(DELAY_KARG) {
        match v.parse::<u64>().map(Duration::from_secs) {
            Ok(d) if d <= MAX_DELAY => policy.delay = d,
            _ => {
                error.get_or_insert(OnFailureError::Delay(v.to_owned()));
            }
        }
    }
    (policy, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide_for(
        line: &str,
        configured: Option<Action>,
        mode: Mode,
    ) -> (OnFailure, Option<OnFailureError>) {
        decide(&Cmdline::parse(line), configured, mode, false)
    }

    #[test]
    fn the_announcement_says_what_when_and_why() {
        let (p, _) = decide(
            &Cmdline::parse("veriroot.failure-delay=3"),
            None,
            Mode::SetupRoot,
            true,
        );
        assert_eq!(
            p.announcement(),
            "rebooting in 3 s (veriroot.on-failure=reboot: systemd-boot counts this entry's tries)"
        );
        let (p, _) = decide_for("veriroot.on-failure=halt", None, Mode::Pid1);
        assert_eq!(
            p.announcement(),
            "halting in 10 s (veriroot.on-failure=halt)"
        );
    }

    #[test]
    fn each_mode_keeps_its_default() {
        let (p, e) = decide_for("ro", None, Mode::Pid1);
        assert_eq!(
            (p.action, p.delay, e),
            (Action::PowerOff, DEFAULT_DELAY, None)
        );
        let (p, _) = decide_for("ro", None, Mode::SetupRoot);
        assert_eq!(p.action, Action::Emergency);
    }

    #[test]
    fn the_command_line_wins_over_the_configuration() {
        let (p, e) = decide_for(
            "veriroot.on-failure=halt veriroot.failure-delay=3",
            Some(Action::Reboot),
            Mode::Pid1,
        );
        assert_eq!(
            (p.action, p.delay, e),
            (Action::Halt, Duration::from_secs(3), None)
        );
        let (p, _) = decide_for("ro", Some(Action::Reboot), Mode::SetupRoot);
        assert_eq!(p.action, Action::Reboot);
    }

    #[test]
    fn malformed_values_are_errors_and_the_defaults_hold() {
        let (p, e) = decide_for(
            "veriroot.on-failure=continue",
            Some(Action::Reboot),
            Mode::Pid1,
        );
        assert_eq!(p.action, Action::Reboot, "the configuration still decides");
        assert_eq!(e, Some(OnFailureError::Action("continue".into())));
        for bad in ["61", "-1", "1.5", "", "1e3"] {
            let (p, e) = decide_for(&format!("veriroot.failure-delay={bad}"), None, Mode::Pid1);
            assert_eq!(p.delay, DEFAULT_DELAY, "{bad}");
            assert_eq!(e, Some(OnFailureError::Delay(bad.into())), "{bad}");
        }
        let (_, e) = decide_for("veriroot.on-failure", None, Mode::Pid1);
        assert_eq!(e, Some(OnFailureError::Action(String::new())));
    }

    #[test]
    fn the_message_escapes_what_the_command_line_said() {
        let e = OnFailureError::Action("x\u{1b}[2J".into());
        assert_eq!(
            e.to_string(),
            "veriroot.on-failure=x\\x1b[2J is not one of emergency, poweroff, reboot or halt"
        );
    }
}
