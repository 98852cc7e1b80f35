use super::strings;

strings! {
    /// The strings of the webhooks pages.
    Webhooks {
        nav: "Webhooks",
    }
}
