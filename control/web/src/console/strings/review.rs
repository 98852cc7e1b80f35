use super::strings;

strings! {
    /// The strings of the review pages.
    Review {
        title: "Review",
    }
}
