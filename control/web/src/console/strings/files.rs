use super::strings;

strings! {
    /// The strings of the files pages.
    Files {
        title: "Files",
    }
}
