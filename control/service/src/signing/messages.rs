//! The texts of the signing flow's messages (e-mail and SMS) and of the page's withdrawal hint,
//! in English, Swedish and Dutch (chosen by the request's language; anything else is English).

/// The languages a request may be in.
pub const LANGUAGES: &[&str] = &["en", "sv", "nl"];

/// A message's subject (e-mail only) and text.
pub struct Text {
    /// Subject line.
    pub subject: String,
    /// Plain-text body (also the SMS).
    pub text: String,
}

/// The request's link: who asks, what, the link and its expiry.
pub fn request(lang: &str, tenant: &str, title: &str, link: &str, expires: &str) -> Text {
    match lang {
        "sv" => Text {
            subject: format!("{tenant} ber om ditt samtycke: {title}"),
            text: format!(
                "{tenant} ber om ditt samtycke: \"{title}\".\n\nLäs texten och välj vad du tillåter här:\n{link}\n\nLänken gäller till {expires} (UTC). Om du inte vill ge ditt samtycke behöver du inte göra något.\n"
            ),
        },
        "nl" => Text {
            subject: format!("{tenant} vraagt om uw toestemming: {title}"),
            text: format!(
                "{tenant} vraagt om uw toestemming: \"{title}\".\n\nLees de tekst en kies wat u toestaat:\n{link}\n\nDe link is geldig tot {expires} (UTC). Als u geen toestemming wilt geven, hoeft u niets te doen.\n"
            ),
        },
        _ => Text {
            subject: format!("{tenant} asks for your consent: {title}"),
            text: format!(
                "{tenant} asks for your consent: \"{title}\".\n\nRead it and choose what you allow here:\n{link}\n\nThe link is valid until {expires} (UTC). If you do not want to give your consent, you need not do anything.\n"
            ),
        },
    }
}

/// The signer's one-time code.
pub fn sign_code(lang: &str, tenant: &str, title: &str, code: &str, minutes: i64) -> Text {
    match lang {
        "sv" => Text {
            subject: format!("Din kod: {title}"),
            text: format!(
                "Din kod för att signera \"{title}\" för {tenant} är {code}. Den gäller i {minutes} minuter. Dela den inte med någon.\n"
            ),
        },
        "nl" => Text {
            subject: format!("Uw code: {title}"),
            text: format!(
                "Uw code om \"{title}\" voor {tenant} te ondertekenen is {code}. De code is {minutes} minuten geldig. Deel hem met niemand.\n"
            ),
        },
        _ => Text {
            subject: format!("Your code: {title}"),
            text: format!(
                "Your code to sign \"{title}\" for {tenant} is {code}. It is valid for {minutes} minutes. Do not share it.\n"
            ),
        },
    }
}

/// The guardian's one-time code.
pub fn guardian_code(
    lang: &str,
    tenant: &str,
    title: &str,
    person: &str,
    code: &str,
    minutes: i64,
) -> Text {
    match lang {
        "sv" => Text {
            subject: format!("Bekräfta som vårdnadshavare: {title}"),
            text: format!(
                "{tenant} ber dig som vårdnadshavare för {person} att bekräfta ett samtycke (\"{title}\"). Din kod är {code} och gäller i {minutes} minuter. Dela den inte med någon.\n"
            ),
        },
        "nl" => Text {
            subject: format!("Bevestigen als ouder of voogd: {title}"),
            text: format!(
                "{tenant} vraagt u als ouder of voogd van {person} een toestemming te bevestigen (\"{title}\"). Uw code is {code}, {minutes} minuten geldig. Deel hem met niemand.\n"
            ),
        },
        _ => Text {
            subject: format!("Confirm as guardian: {title}"),
            text: format!(
                "{tenant} asks you, as guardian of {person}, to confirm a consent (\"{title}\"). Your code is {code}, valid for {minutes} minutes. Do not share it.\n"
            ),
        },
    }
}

/// The withdrawal's one-time code.
pub fn withdraw_code(lang: &str, tenant: &str, title: &str, code: &str, minutes: i64) -> Text {
    match lang {
        "sv" => Text {
            subject: format!("Din kod för att återkalla: {title}"),
            text: format!(
                "Din kod för att återkalla ditt samtycke (\"{title}\") till {tenant} är {code}. Den gäller i {minutes} minuter.\n"
            ),
        },
        "nl" => Text {
            subject: format!("Uw code om in te trekken: {title}"),
            text: format!(
                "Uw code om uw toestemming (\"{title}\") aan {tenant} in te trekken is {code}. De code is {minutes} minuten geldig.\n"
            ),
        },
        _ => Text {
            subject: format!("Your code to withdraw: {title}"),
            text: format!(
                "Your code to withdraw your consent (\"{title}\") given to {tenant} is {code}. It is valid for {minutes} minutes.\n"
            ),
        },
    }
}

/// The receipt's link, after signing.
pub fn receipt(lang: &str, tenant: &str, title: &str, date: &str, link: &str) -> Text {
    match lang {
        "sv" => Text {
            subject: format!("Ditt kvitto: {title}"),
            text: format!(
                "Tack. Du har signerat \"{title}\" för {tenant} den {date}.\n\nDitt kvitto (med den förseglade posten och en PDF), och möjligheten att när som helst återkalla ditt samtycke:\n{link}\n"
            ),
        },
        "nl" => Text {
            subject: format!("Uw ontvangstbewijs: {title}"),
            text: format!(
                "Dank u. U hebt \"{title}\" voor {tenant} ondertekend op {date}.\n\nUw ontvangstbewijs (met het verzegelde record en een pdf), en de manier om uw toestemming op elk moment in te trekken:\n{link}\n"
            ),
        },
        _ => Text {
            subject: format!("Your receipt: {title}"),
            text: format!(
                "Thank you. You signed \"{title}\" for {tenant} on {date}.\n\nYour receipt (with the sealed record and a PDF), and the way to withdraw your consent at any time:\n{link}\n"
            ),
        },
    }
}

/// The confirmation of a withdrawal.
pub fn withdrawn(lang: &str, tenant: &str, title: &str, date: &str, link: &str) -> Text {
    match lang {
        "sv" => Text {
            subject: format!("Ditt samtycke är återkallat: {title}"),
            text: format!(
                "Ditt samtycke (\"{title}\") till {tenant} återkallades den {date}. Du behöver inte göra något mer.\n\nDitt kvitto:\n{link}\n"
            ),
        },
        "nl" => Text {
            subject: format!("Uw toestemming is ingetrokken: {title}"),
            text: format!(
                "Uw toestemming (\"{title}\") aan {tenant} is ingetrokken op {date}. U hoeft verder niets te doen.\n\nUw ontvangstbewijs:\n{link}\n"
            ),
        },
        _ => Text {
            subject: format!("Your consent is withdrawn: {title}"),
            text: format!(
                "Your consent (\"{title}\") given to {tenant} was withdrawn on {date}. Nothing more is needed.\n\nYour receipt:\n{link}\n"
            ),
        },
    }
}

/// How to withdraw later (shown on the signer's page).
pub fn withdraw_hint(lang: &str) -> &'static str {
    match lang {
        "sv" => {
            "Du kan när som helst återkalla ditt samtycke, lika enkelt som du gav det: via länken i kvittot du får efter signeringen, med en kod."
        }
        "nl" => {
            "U kunt uw toestemming op elk moment intrekken, even eenvoudig als u die gaf: via de link in het ontvangstbewijs dat u na het ondertekenen krijgt, met één code."
        }
        _ => {
            "You can withdraw your consent at any time, as easily as you gave it: through the link in the receipt you receive after signing, with one code."
        }
    }
}
