//! Deliberately broken builds, for the negative controls of the chaos harness: with the
//! `sabotage` feature, `CHAOS_SABOTAGE` (comma-separated) switches off one repair each, so the
//! harness can show its checker catches the violation that repair prevents. Without the
//! feature every check here is `false` and compiles away.

/// A repair a sabotaged build leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sabotage {
    /// [`super::Engine::heal_stock`] never re-warms, and warm-up adopts no lost holds.
    NoHeal,
    /// [`super::Engine::order_lookup`] never declares a lost reservation lost.
    NoVoid,
}

impl Sabotage {
    #[cfg(feature = "sabotage")]
    fn name(self) -> &'static str {
        match self {
            Sabotage::NoHeal => "no-heal",
            Sabotage::NoVoid => "no-void",
        }
    }
}

/// Whether this build was told to leave `s` out.
pub(crate) fn on(s: Sabotage) -> bool {
    #[cfg(feature = "sabotage")]
    {
        std::env::var("CHAOS_SABOTAGE").is_ok_and(|v| v.split(',').any(|x| x.trim() == s.name()))
    }
    #[cfg(not(feature = "sabotage"))]
    {
        let _ = s;
        false
    }
}
