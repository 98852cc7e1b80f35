use super::strings;

strings! {
    /// The strings of the persons pages.
    Persons {
        title: "Persons",
    }
}
