use super::strings;

strings! {
    /// The strings of the shares pages.
    Shares {
        nav: "Share links",
    }
}
