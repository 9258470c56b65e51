//! How the root and its writable parts are mounted: the same choices,
//! names and defaults as composefs-setup-root (`[root] transient`,
//! `[etc]`/`[var]` `mount = none|bind|overlay|transient`). Measured as the
//! `veriroot:policy:…` event (docs/pcr.md; the word stays for the users who
//! sealed to it).

use std::fmt;

/// What becomes of /etc or /var.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateMount {
    /// The image's directory as is (read-only).
    None,
    /// `state/deploy/<hex>/<dir>` bind-mounted: it holds the whole directory.
    Bind,
    /// The image's directory below, `state/deploy/<hex>/<dir>/upper` above.
    Overlay,
    /// The image's directory below, a tmpfs above: changes vanish at reboot.
    Transient,
}

impl StateMount {
    pub const fn name(self) -> &'static str {
        match self {
            StateMount::None => "none",
            StateMount::Bind => "bind",
            StateMount::Overlay => "overlay",
            StateMount::Transient => "transient",
        }
    }

    /// Also takes bootc's alias `root` for `none`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "none" | "root" => Some(StateMount::None),
            "bind" => Some(StateMount::Bind),
            "overlay" => Some(StateMount::Overlay),
            "transient" => Some(StateMount::Transient),
            _ => None,
        }
    }

    /// Whether it is an overlay on top of the image's directory.
    pub const fn stacks(self) -> bool {
        matches!(self, StateMount::Overlay | StateMount::Transient)
    }
}

impl fmt::Display for StateMount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `[root] transient` together with an overlay on /etc or /var.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeConflict {
    /// `etc` or `var`.
    pub dir: &'static str,
    pub mode: StateMount,
}

impl fmt::Display for ModeConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ModeConflict { dir, mode } = self;
        write!(
            f,
            "[root] transient = true cannot be combined with [{dir}] mount = \"{mode}\": \
             overlayfs stacks at most two deep; use mount = \"none\" (the transient \
             root already makes /{dir} writable) or \"bind\""
        )
    }
}

impl std::error::Error for ModeConflict {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountModes {
    /// A tmpfs overlay over the whole root: writable, forgotten at reboot.
    pub root_transient: bool,
    pub etc: StateMount,
    pub var: StateMount,
}

impl Default for MountModes {
    /// composefs-setup-root's defaults.
    fn default() -> Self {
        MountModes {
            root_transient: false,
            etc: StateMount::Overlay,
            var: StateMount::Bind,
        }
    }
}

impl MountModes {
    /// Overlayfs stacks at most two deep (FILESYSTEM_MAX_STACK_DEPTH): the
    /// composefs overlay is one, a transient root a second, so an overlay
    /// on /etc or /var above that would fail at mount time. Said up front.
    pub fn validate(&self) -> Result<(), ModeConflict> {
        for (dir, mode) in [("etc", self.etc), ("var", self.var)] {
            if self.root_transient && mode.stacks() {
                return Err(ModeConflict { dir, mode });
            }
        }
        Ok(())
    }

    /// The part of the measured policy event that describes the mounts.
    pub fn describe(&self) -> String {
        format!(
            "root={}:etc={}:var={}",
            if self.root_transient {
                "transient"
            } else {
                "readonly"
            },
            self.etc,
            self.var
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases() {
        for m in [
            StateMount::None,
            StateMount::Bind,
            StateMount::Overlay,
            StateMount::Transient,
        ] {
            assert_eq!(StateMount::from_name(m.name()), Some(m));
        }
        assert_eq!(StateMount::from_name("root"), Some(StateMount::None));
        assert_eq!(StateMount::from_name("tmpfs"), None);
    }

    #[test]
    fn transient_root_refuses_stacked_state() {
        let mut p = MountModes {
            root_transient: true,
            ..MountModes::default()
        };
        assert!(p
            .validate()
            .unwrap_err()
            .to_string()
            .contains("[etc] mount = \"overlay\""));
        p.etc = StateMount::None;
        assert!(p.validate().is_ok(), "var=bind is fine");
        p.var = StateMount::Transient;
        assert_eq!(
            p.validate().unwrap_err(),
            ModeConflict {
                dir: "var",
                mode: StateMount::Transient
            }
        );
        assert_eq!(
            MountModes::default().describe(),
            "root=readonly:etc=overlay:var=bind"
        );
    }
}
