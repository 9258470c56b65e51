//! How the writable parts of the new root are mounted: the same choices,
//! names and defaults as composefs-setup-root (`[root] transient`,
//! `[etc]`/`[var]` `mount = none|bind|overlay|transient`).

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountPolicy {
    /// A tmpfs overlay over the whole root: writable, forgotten at reboot.
    pub root_transient: bool,
    pub etc: StateMount,
    pub var: StateMount,
}

impl Default for MountPolicy {
    /// composefs-setup-root's defaults.
    fn default() -> Self {
        MountPolicy {
            root_transient: false,
            etc: StateMount::Overlay,
            var: StateMount::Bind,
        }
    }
}

impl MountPolicy {
    /// Overlayfs stacks at most two deep (FILESYSTEM_MAX_STACK_DEPTH): the
    /// composefs overlay is one, a transient root a second, so an overlay
    /// on /etc or /var above that would fail at mount time. Said up front.
    pub fn validate(&self) -> Result<(), String> {
        for (dir, m) in [("etc", self.etc), ("var", self.var)] {
            if self.root_transient && m.stacks() {
                return Err(format!(
                    "[root] transient = true cannot be combined with [{dir}] mount = \"{m}\": \
                     overlayfs stacks at most two deep; use mount = \"none\" (the transient \
                     root already makes /{dir} writable) or \"bind\""
                ));
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
        let mut p = MountPolicy {
            root_transient: true,
            ..MountPolicy::default()
        };
        assert!(p
            .validate()
            .unwrap_err()
            .contains("[etc] mount = \"overlay\""));
        p.etc = StateMount::None;
        assert!(p.validate().is_ok(), "var=bind is fine");
        p.var = StateMount::Transient;
        assert!(p.validate().unwrap_err().contains("[var]"));
        assert_eq!(
            MountPolicy::default().describe(),
            "root=readonly:etc=overlay:var=bind"
        );
    }
}
