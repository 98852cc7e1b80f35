use super::strings;

strings! {
    /// The strings of the alerts pages.
    Alerts {
        nav: "Alerts",
    }
}
