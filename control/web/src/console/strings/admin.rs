use super::strings;

strings! {
    /// The strings of the admin pages.
    Admin {
        title: "Admin",
    }
}
