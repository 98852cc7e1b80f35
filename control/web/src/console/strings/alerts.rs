use super::strings;

strings! {
    /// The strings of the alerts page and of the publications sections (file and person pages).
    Alerts {
        nav: "Alerts",
        title: "Consents ending soon",
        intro: "Consents in force whose last day falls within the window. Files showing the person may no longer be used after that day: renew in time.",
        within_label: "Window (days)",
        within_show: "Show",
        none: "No consent ends within this window.",
        person: "Person",
        last_day: "Last day",
        days_left: "Days left",
        channels: "Channels",
        files: "Files",
        renewal: "Renewal",
        renewal_waiting: "Request waiting since",
        renew: "Send a renewal request",
        renew_help: "Sends a signing request pre-filled from the consent (same person, template, channel and language when it was signed digitally).",
        digest_title: "Daily digest",
        digest_help: "Users whose role manages consents receive a daily e-mail listing the consents that end within the notice period.",
        digest_not_recipient: "Your role does not manage consents: you receive no digest.",
        digest_opt_out: "Do not send me the daily digest e-mail",
        digest_save: "Save preference",
        digest_hour: "Sent from (UTC hour)",
        pub_file_title: "Where this file is used",
        pub_person_title: "Where this person's face is used",
        pub_none: "No publication is recorded.",
        pub_file: "File",
        pub_channel: "Channel",
        pub_location: "Location",
        pub_placed: "Placed",
        pub_removed: "Removed",
        pub_by: "by",
        pub_in_use: "In use",
        pub_more: "Most recent shown; all through the API",
    }
}
