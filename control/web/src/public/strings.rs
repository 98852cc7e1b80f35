//! Every word the public pages show, in English, Swedish and Dutch: one constant of
//! [`Strings`] per language (a missing translation is a compile error, not a blank on a page).
//! A page speaks the language of its signing request; pages that know no request (an unknown
//! link) follow the browser's `Accept-Language`.

use actix_web::HttpRequest;
use actix_web::http::header;

/// All the public pages' strings in one language.
#[derive(Debug)]
#[allow(missing_docs)]
pub struct Strings {
    /// Language tag (the page's `lang`).
    pub lang: &'static str,
    pub skip_to_content: &'static str,
    pub footer: &'static str,

    // The signing page.
    pub sign_title: &'static str,
    pub asked_by: &'static str,
    pub for_person: &'static str,
    pub agreement: &'static str,
    pub version: &'static str,
    pub validity: &'static str,
    pub valid_until: &'static str,
    pub valid_until_withdrawn: &'static str,
    pub valid_days: &'static str,
    pub scopes_legend: &'static str,
    pub scopes_hint: &'static str,
    pub required: &'static str,
    pub optional: &'static str,
    pub face_legend: &'static str,
    pub face_explain: &'static str,
    pub face_checkbox: &'static str,
    pub files_heading: &'static str,
    pub files_hint: &'static str,
    pub file_alt: &'static str,
    pub withdraw_later_heading: &'static str,
    pub withdraw_later_text: &'static str,
    pub guardian_legend: &'static str,
    pub guardian_explain: &'static str,
    pub guardian_name: &'static str,
    pub guardian_relation: &'static str,
    pub guardian_relation_hint: &'static str,
    pub guardian_contact: &'static str,
    pub guardian_contact_hint: &'static str,
    pub continue_button: &'static str,

    // The code page.
    pub code_title: &'static str,
    pub code_sent_to: &'static str,
    pub guardian_code_sent_to: &'static str,
    pub code_label: &'static str,
    pub code_hint: &'static str,
    pub guardian_code_label: &'static str,
    pub code_expires: &'static str,
    pub minutes: &'static str,
    pub sign_button: &'static str,
    pub no_code: &'static str,
    pub resend_button: &'static str,
    pub code_resent: &'static str,
    pub wrong_code: &'static str,
    pub guardian_wrong_code: &'static str,
    pub attempts_left: &'static str,

    // Done.
    pub signed_title: &'static str,
    pub signed_text: &'static str,
    pub receipt_link: &'static str,
    pub receipt_sent: &'static str,

    // The receipt page.
    pub receipt_title: &'static str,
    pub receipt_intro: &'static str,
    pub signed_on: &'static str,
    pub signed_by: &'static str,
    pub guardian: &'static str,
    pub guardian_confirmed: &'static str,
    pub allowed: &'static str,
    pub declined: &'static str,
    pub nothing: &'static str,
    pub face_matching: &'static str,
    pub yes: &'static str,
    pub no: &'static str,
    pub status_withdrawn: &'static str,
    pub downloads_heading: &'static str,
    pub download_pdf: &'static str,
    pub download_json: &'static str,
    pub verify_heading: &'static str,
    pub verify_text: &'static str,
    pub verify_keys: &'static str,
    pub record_sha256: &'static str,
    pub key_id: &'static str,
    pub withdraw_heading: &'static str,
    pub withdraw_text: &'static str,
    pub withdraw_button: &'static str,

    // Withdrawal.
    pub withdraw_code_title: &'static str,
    pub withdraw_confirm_button: &'static str,
    pub withdrawn_title: &'static str,
    pub withdrawn_text: &'static str,
    pub back_to_receipt: &'static str,

    // Errors.
    pub error_title: &'static str,
    pub link_invalid_title: &'static str,
    pub link_invalid_text: &'static str,
    pub link_expired_title: &'static str,
    pub link_expired_text: &'static str,
    pub link_revoked_title: &'static str,
    pub link_revoked_text: &'static str,
    pub already_signed_title: &'static str,
    pub already_signed_text: &'static str,
    pub already_withdrawn_title: &'static str,
    pub already_withdrawn_text: &'static str,
    pub locked_title: &'static str,
    pub locked_text: &'static str,
    pub code_expired_text: &'static str,
    pub code_locked_text: &'static str,
    pub rate_limited_title: &'static str,
    pub rate_limited_text: &'static str,
    pub retry_in: &'static str,
    pub seconds: &'static str,
    pub forbidden_title: &'static str,
    pub forbidden_text: &'static str,
    pub invalid_title: &'static str,
    pub invalid_text: &'static str,
    pub missing_required_scope: &'static str,
    pub missing_guardian: &'static str,
    pub unavailable_title: &'static str,
    pub unavailable_text: &'static str,
    pub internal_title: &'static str,
    pub internal_text: &'static str,
    pub status_label: &'static str,
}

/// English.
pub static EN: Strings = Strings {
    lang: "en",
    skip_to_content: "Skip to content",
    footer: "This page keeps no account and no tracking. Your link is personal: please do not share it.",

    sign_title: "Your consent",
    asked_by: "Asked by",
    for_person: "For",
    agreement: "Agreement",
    version: "version",
    validity: "Validity",
    valid_until: "Valid until",
    valid_until_withdrawn: "Until you withdraw it",
    valid_days: "days from signing",
    scopes_legend: "What do you allow?",
    scopes_hint: "Tick what you agree to. Nothing is ticked for you. What you leave unticked is declined.",
    required: "required",
    optional: "optional",
    face_legend: "Face recognition (biometric data)",
    face_explain: "This is a separate choice. Face recognition uses your face's features, which are a special category of personal data (GDPR Article 9). It is voluntary: you can say no and still agree to the rest.",
    face_checkbox: "Yes, I allow face recognition",
    files_heading: "The images",
    files_hint: "The images this is about. Other people's faces are blurred.",
    file_alt: "Image",
    withdraw_later_heading: "Changing your mind",
    withdraw_later_text: "You can withdraw your consent at any time, as easily as you give it: open the link in your receipt and confirm with one code. Withdrawing does not affect use before the withdrawal.",
    guardian_legend: "Parent or guardian",
    guardian_explain: "Because of your age, a parent or guardian must agree too. They get their own code to confirm.",
    guardian_name: "Guardian's full name",
    guardian_relation: "Relation to you",
    guardian_relation_hint: "For example mother, father or legal guardian.",
    guardian_contact: "Guardian's e-mail or mobile number",
    guardian_contact_hint: "Their code is sent here.",
    continue_button: "Continue",

    code_title: "Enter your code",
    code_sent_to: "We sent a 6-digit code to",
    guardian_code_sent_to: "The guardian's code was sent to",
    code_label: "Your 6-digit code",
    code_hint: "Only digits, no spaces.",
    guardian_code_label: "The guardian's 6-digit code",
    code_expires: "The code is valid for",
    minutes: "minutes",
    sign_button: "Sign",
    no_code: "No code arrived?",
    resend_button: "Send a new code",
    code_resent: "A new code is on its way.",
    wrong_code: "That code is not right. Check it and try again.",
    guardian_wrong_code: "Your code is right, but the guardian's code is not. Check it and try again.",
    attempts_left: "Attempts left:",

    signed_title: "Thank you, you have signed",
    signed_text: "Your choices are recorded and sealed. A receipt is also on its way to you.",
    receipt_link: "See your receipt",
    receipt_sent: "Keep your receipt: it proves what you agreed to, and its link lets you withdraw.",

    receipt_title: "Your receipt",
    receipt_intro: "This is the record of what you agreed to. It is signed, so that anyone can check it has not been changed.",
    signed_on: "Signed on",
    signed_by: "Signed by",
    guardian: "Guardian",
    guardian_confirmed: "confirmed with their own code",
    allowed: "You allowed",
    declined: "You declined",
    nothing: "Nothing",
    face_matching: "Face recognition",
    yes: "Yes",
    no: "No",
    status_withdrawn: "Withdrawn on",
    downloads_heading: "Download",
    download_pdf: "Receipt (PDF)",
    download_json: "Signed record (JSON)",
    verify_heading: "How to check the receipt",
    verify_text: "The record is signed with Ed25519. Anyone can check the JSON record against our published public keys, for example with the command likeness-control verify-receipt. Changing a single character makes the check fail.",
    verify_keys: "Our public keys",
    record_sha256: "Fingerprint (SHA-256)",
    key_id: "Key",
    withdraw_heading: "Withdraw my consent",
    withdraw_text: "You can withdraw at any time. We send you one code to confirm. Withdrawing does not affect use before the withdrawal.",
    withdraw_button: "Withdraw my consent",

    withdraw_code_title: "Confirm the withdrawal",
    withdraw_confirm_button: "Withdraw",
    withdrawn_title: "Your consent is withdrawn",
    withdrawn_text: "From now on your images are no longer used on the basis of this consent, and any face recognition data about you is deleted.",
    back_to_receipt: "Back to your receipt",

    error_title: "Something went wrong",
    link_invalid_title: "This link is not valid",
    link_invalid_text: "Check that you opened the whole link from your message. If it still does not work, ask the sender for a new one.",
    link_expired_title: "This link has expired",
    link_expired_text: "Links are valid for a limited time. Ask the sender for a new one.",
    link_revoked_title: "This link has been cancelled",
    link_revoked_text: "The sender has cancelled this request. If you think this is a mistake, contact them.",
    already_signed_title: "You have already signed",
    already_signed_text: "This link has been used. See your receipt: its link was sent to you after signing.",
    already_withdrawn_title: "Already withdrawn",
    already_withdrawn_text: "This consent has already been withdrawn. Nothing more is needed.",
    locked_title: "This request is locked",
    locked_text: "The code was entered wrongly too many times, so the request was locked to protect you. Ask the sender for a new link.",
    code_expired_text: "The code has expired. Send yourself a new code.",
    code_locked_text: "The code was entered wrongly too many times. Send yourself a new code.",
    rate_limited_title: "Please wait a moment",
    rate_limited_text: "Too many tries in a short time.",
    retry_in: "Try again in",
    seconds: "seconds",
    forbidden_title: "The form has expired",
    forbidden_text: "For your safety we could not accept this form. Open your link again and retry. Cookies must be allowed for this site.",
    invalid_title: "Please check your answers",
    invalid_text: "Something in the form was missing or not valid.",
    missing_required_scope: "Please tick every required choice, or close the page if you do not agree.",
    missing_guardian: "Please fill in the guardian's name, relation and e-mail or mobile number.",
    unavailable_title: "Temporarily unavailable",
    unavailable_text: "The service is busy right now. Please try again in a few minutes.",
    internal_title: "Something went wrong",
    internal_text: "An error occurred on our side. Please try again later.",
    status_label: "Status",
};

/// Swedish.
pub static SV: Strings = Strings {
    lang: "sv",
    skip_to_content: "Hoppa till innehållet",
    footer: "Sidan har inga konton och ingen spårning. Länken är personlig, dela den inte.",

    sign_title: "Ditt samtycke",
    asked_by: "Förfrågan från",
    for_person: "Gäller",
    agreement: "Avtal",
    version: "version",
    validity: "Giltighet",
    valid_until: "Gäller till och med",
    valid_until_withdrawn: "Tills du återkallar det",
    valid_days: "dagar från underskriften",
    scopes_legend: "Vad godkänner du?",
    scopes_hint: "Kryssa i det du går med på. Inget är ikryssat i förväg, och det du lämnar tomt säger du nej till.",
    required: "obligatoriskt",
    optional: "valfritt",
    face_legend: "Ansiktsigenkänning (biometriska uppgifter)",
    face_explain: "Det här är ett separat val. Ansiktsigenkänning använder kännetecken i ditt ansikte, som räknas som känsliga personuppgifter (artikel 9 i GDPR). Det är frivilligt: du kan tacka nej och ändå godkänna resten.",
    face_checkbox: "Ja, jag godkänner ansiktsigenkänning",
    files_heading: "Bilderna",
    files_hint: "Bilderna det gäller. Andra personers ansikten är suddade.",
    file_alt: "Bild",
    withdraw_later_heading: "Om du ändrar dig",
    withdraw_later_text: "Du kan när som helst återkalla ditt samtycke, lika enkelt som du ger det: öppna länken i ditt kvitto och bekräfta med en kod. Det påverkar inte användning som skett innan dess.",
    guardian_legend: "Vårdnadshavare",
    guardian_explain: "På grund av din ålder behöver även en vårdnadshavare godkänna. Vårdnadshavaren får en egen kod att bekräfta med.",
    guardian_name: "Vårdnadshavarens för- och efternamn",
    guardian_relation: "Relation till dig",
    guardian_relation_hint: "Till exempel mamma, pappa eller särskilt förordnad vårdnadshavare.",
    guardian_contact: "Vårdnadshavarens e-post eller mobilnummer",
    guardian_contact_hint: "Koden skickas hit.",
    continue_button: "Fortsätt",

    code_title: "Ange din kod",
    code_sent_to: "Vi har skickat en sexsiffrig kod till",
    guardian_code_sent_to: "Vårdnadshavarens kod skickades till",
    code_label: "Din sexsiffriga kod",
    code_hint: "Bara siffror, inga mellanslag.",
    guardian_code_label: "Vårdnadshavarens sexsiffriga kod",
    code_expires: "Koden gäller i",
    minutes: "minuter",
    sign_button: "Skriv under",
    no_code: "Har du inte fått någon kod?",
    resend_button: "Skicka en ny kod",
    code_resent: "En ny kod är på väg.",
    wrong_code: "Koden stämmer inte. Kontrollera den och försök igen.",
    guardian_wrong_code: "Din kod stämmer, men inte vårdnadshavarens. Kontrollera den och försök igen.",
    attempts_left: "Försök kvar:",

    signed_title: "Tack, du har skrivit under",
    signed_text: "Dina val är registrerade och förseglade. Ett kvitto skickas också till dig.",
    receipt_link: "Visa ditt kvitto",
    receipt_sent: "Spara kvittot: det visar vad du har godkänt, och via länken i det kan du återkalla samtycket.",

    receipt_title: "Ditt kvitto",
    receipt_intro: "Här ser du vad du har godkänt. Kvittot är signerat, så vem som helst kan kontrollera att det inte har ändrats.",
    signed_on: "Undertecknat",
    signed_by: "Undertecknat av",
    guardian: "Vårdnadshavare",
    guardian_confirmed: "bekräftade med en egen kod",
    allowed: "Du godkände",
    declined: "Du sa nej till",
    nothing: "Inget",
    face_matching: "Ansiktsigenkänning",
    yes: "Ja",
    no: "Nej",
    status_withdrawn: "Återkallat",
    downloads_heading: "Ladda ner",
    download_pdf: "Kvitto (PDF)",
    download_json: "Signerad post (JSON)",
    verify_heading: "Så kontrollerar du kvittot",
    verify_text: "Posten är signerad med Ed25519. Vem som helst kan kontrollera JSON-posten mot våra publicerade publika nycklar, till exempel med kommandot likeness-control verify-receipt. Ändras ett enda tecken misslyckas kontrollen.",
    verify_keys: "Våra publika nycklar",
    record_sha256: "Fingeravtryck (SHA-256)",
    key_id: "Nyckel",
    withdraw_heading: "Återkalla mitt samtycke",
    withdraw_text: "Du kan återkalla när som helst. Vi skickar en kod som du bekräftar med. Det påverkar inte användning som skett innan dess.",
    withdraw_button: "Återkalla mitt samtycke",

    withdraw_code_title: "Bekräfta återkallelsen",
    withdraw_confirm_button: "Återkalla",
    withdrawn_title: "Ditt samtycke är återkallat",
    withdrawn_text: "Från och med nu används dina bilder inte längre med stöd av det här samtycket, och eventuella uppgifter för ansiktsigenkänning om dig raderas.",
    back_to_receipt: "Tillbaka till kvittot",

    error_title: "Något gick fel",
    link_invalid_title: "Länken är inte giltig",
    link_invalid_text: "Kontrollera att du öppnade hela länken från meddelandet. Fungerar den ändå inte kan du be avsändaren om en ny.",
    link_expired_title: "Länken har gått ut",
    link_expired_text: "Länkar gäller bara en viss tid. Be avsändaren om en ny.",
    link_revoked_title: "Länken har dragits tillbaka",
    link_revoked_text: "Avsändaren har dragit tillbaka förfrågan. Hör av dig till dem om du tror att det är fel.",
    already_signed_title: "Du har redan skrivit under",
    already_signed_text: "Länken är redan använd. Titta i ditt kvitto: länken till det skickades till dig när du skrev under.",
    already_withdrawn_title: "Redan återkallat",
    already_withdrawn_text: "Samtycket är redan återkallat. Du behöver inte göra något mer.",
    locked_title: "Förfrågan är låst",
    locked_text: "Koden angavs fel för många gånger, så förfrågan har låsts för din säkerhet. Be avsändaren om en ny länk.",
    code_expired_text: "Koden har gått ut. Skicka en ny kod till dig själv.",
    code_locked_text: "Koden angavs fel för många gånger. Skicka en ny kod till dig själv.",
    rate_limited_title: "Vänta en stund",
    rate_limited_text: "För många försök på kort tid.",
    retry_in: "Försök igen om",
    seconds: "sekunder",
    forbidden_title: "Formuläret har gått ut",
    forbidden_text: "Av säkerhetsskäl kunde vi inte ta emot formuläret. Öppna länken igen och försök på nytt. Webbplatsen behöver få använda kakor.",
    invalid_title: "Kontrollera dina svar",
    invalid_text: "Något i formuläret saknades eller var inte giltigt.",
    missing_required_scope: "Kryssa i alla obligatoriska val, eller stäng sidan om du inte vill godkänna.",
    missing_guardian: "Fyll i vårdnadshavarens namn, relation och e-post eller mobilnummer.",
    unavailable_title: "Tillfälligt otillgänglig",
    unavailable_text: "Tjänsten är hårt belastad just nu. Försök igen om några minuter.",
    internal_title: "Något gick fel",
    internal_text: "Ett fel uppstod hos oss. Försök igen senare.",
    status_label: "Status",
};

/// Dutch.
pub static NL: Strings = Strings {
    lang: "nl",
    skip_to_content: "Naar de inhoud",
    footer: "Deze pagina gebruikt geen account en volgt je niet. De link is persoonlijk: deel hem niet.",

    sign_title: "Jouw toestemming",
    asked_by: "Gevraagd door",
    for_person: "Voor",
    agreement: "Overeenkomst",
    version: "versie",
    validity: "Geldigheid",
    valid_until: "Geldig tot en met",
    valid_until_withdrawn: "Tot je de toestemming intrekt",
    valid_days: "dagen na ondertekening",
    scopes_legend: "Waarvoor geef je toestemming?",
    scopes_hint: "Vink aan waarmee je akkoord gaat. Er staat niets vooraf aangevinkt; wat je niet aanvinkt, weiger je.",
    required: "verplicht",
    optional: "optioneel",
    face_legend: "Gezichtsherkenning (biometrische gegevens)",
    face_explain: "Dit is een aparte keuze. Gezichtsherkenning gebruikt kenmerken van je gezicht; dat zijn bijzondere persoonsgegevens (artikel 9 AVG). Het is vrijwillig: je kunt weigeren en toch met de rest akkoord gaan.",
    face_checkbox: "Ja, ik geef toestemming voor gezichtsherkenning",
    files_heading: "De foto's",
    files_hint: "De foto's waar het om gaat. Gezichten van anderen zijn onherkenbaar gemaakt.",
    file_alt: "Foto",
    withdraw_later_heading: "Van gedachten veranderd?",
    withdraw_later_text: "Je kunt je toestemming altijd intrekken, net zo makkelijk als je haar geeft: open de link in je bewijs en bevestig met één code. Gebruik van vóór het intrekken blijft rechtmatig.",
    guardian_legend: "Ouder of voogd",
    guardian_explain: "Vanwege je leeftijd moet ook een ouder of voogd toestemming geven. Die krijgt een eigen code om te bevestigen.",
    guardian_name: "Volledige naam van de ouder of voogd",
    guardian_relation: "Relatie tot jou",
    guardian_relation_hint: "Bijvoorbeeld moeder, vader of voogd.",
    guardian_contact: "E-mailadres of mobiel nummer van de ouder of voogd",
    guardian_contact_hint: "De code wordt hierheen gestuurd.",
    continue_button: "Verder",

    code_title: "Vul je code in",
    code_sent_to: "We hebben een code van 6 cijfers gestuurd naar",
    guardian_code_sent_to: "De code voor de ouder of voogd is gestuurd naar",
    code_label: "Je code van 6 cijfers",
    code_hint: "Alleen cijfers, zonder spaties.",
    guardian_code_label: "De code van 6 cijfers van de ouder of voogd",
    code_expires: "De code is geldig gedurende",
    minutes: "minuten",
    sign_button: "Ondertekenen",
    no_code: "Geen code ontvangen?",
    resend_button: "Stuur een nieuwe code",
    code_resent: "Er is een nieuwe code onderweg.",
    wrong_code: "Die code klopt niet. Controleer hem en probeer het opnieuw.",
    guardian_wrong_code: "Jouw code klopt, maar die van je ouder of voogd niet. Controleer hem en probeer het opnieuw.",
    attempts_left: "Pogingen over:",

    signed_title: "Bedankt, je hebt ondertekend",
    signed_text: "Je keuzes zijn vastgelegd en verzegeld. Je ontvangt ook een bewijs.",
    receipt_link: "Bekijk je bewijs",
    receipt_sent: "Bewaar je bewijs: het laat zien waarmee je akkoord ging, en met de link erin kun je intrekken.",

    receipt_title: "Je bewijs",
    receipt_intro: "Dit is de vastlegging van waarmee je akkoord ging. Ze is digitaal ondertekend, zodat iedereen kan nagaan dat er niets aan veranderd is.",
    signed_on: "Ondertekend op",
    signed_by: "Ondertekend door",
    guardian: "Ouder of voogd",
    guardian_confirmed: "bevestigde met een eigen code",
    allowed: "Toegestaan",
    declined: "Geweigerd",
    nothing: "Niets",
    face_matching: "Gezichtsherkenning",
    yes: "Ja",
    no: "Nee",
    status_withdrawn: "Ingetrokken op",
    downloads_heading: "Downloaden",
    download_pdf: "Bewijs (pdf)",
    download_json: "Ondertekende vastlegging (JSON)",
    verify_heading: "Zo controleer je het bewijs",
    verify_text: "De vastlegging is ondertekend met Ed25519. Iedereen kan het JSON-bestand controleren met onze gepubliceerde publieke sleutels, bijvoorbeeld met het commando likeness-control verify-receipt. Verandert er ook maar één teken, dan mislukt de controle.",
    verify_keys: "Onze publieke sleutels",
    record_sha256: "Vingerafdruk (SHA-256)",
    key_id: "Sleutel",
    withdraw_heading: "Mijn toestemming intrekken",
    withdraw_text: "Je kunt altijd intrekken. We sturen je één code om te bevestigen. Gebruik van vóór het intrekken blijft rechtmatig.",
    withdraw_button: "Mijn toestemming intrekken",

    withdraw_code_title: "Bevestig het intrekken",
    withdraw_confirm_button: "Intrekken",
    withdrawn_title: "Je toestemming is ingetrokken",
    withdrawn_text: "Vanaf nu worden je foto's niet meer op grond van deze toestemming gebruikt, en eventuele gegevens voor gezichtsherkenning over jou worden verwijderd.",
    back_to_receipt: "Terug naar je bewijs",

    error_title: "Er ging iets mis",
    link_invalid_title: "Deze link is niet geldig",
    link_invalid_text: "Controleer of je de hele link uit je bericht hebt geopend. Werkt hij nog steeds niet, vraag de afzender dan om een nieuwe.",
    link_expired_title: "Deze link is verlopen",
    link_expired_text: "Links zijn maar een beperkte tijd geldig. Vraag de afzender om een nieuwe.",
    link_revoked_title: "Deze link is ingetrokken",
    link_revoked_text: "De afzender heeft dit verzoek ingetrokken. Denk je dat dit niet klopt, neem dan contact met hen op.",
    already_signed_title: "Je hebt al ondertekend",
    already_signed_text: "Deze link is al gebruikt. Bekijk je bewijs: de link daarnaar is je na het ondertekenen gestuurd.",
    already_withdrawn_title: "Al ingetrokken",
    already_withdrawn_text: "Deze toestemming is al ingetrokken. Je hoeft niets meer te doen.",
    locked_title: "Dit verzoek is geblokkeerd",
    locked_text: "De code is te vaak verkeerd ingevuld, daarom is het verzoek voor je veiligheid geblokkeerd. Vraag de afzender om een nieuwe link.",
    code_expired_text: "De code is verlopen. Laat een nieuwe code sturen.",
    code_locked_text: "De code is te vaak verkeerd ingevuld. Laat een nieuwe code sturen.",
    rate_limited_title: "Even geduld",
    rate_limited_text: "Te veel pogingen in korte tijd.",
    retry_in: "Probeer het opnieuw over",
    seconds: "seconden",
    forbidden_title: "Het formulier is verlopen",
    forbidden_text: "Voor je veiligheid konden we dit formulier niet aannemen. Open je link opnieuw en probeer het nog eens. Cookies moeten voor deze site zijn toegestaan.",
    invalid_title: "Controleer je antwoorden",
    invalid_text: "Er ontbrak iets in het formulier of iets was niet geldig.",
    missing_required_scope: "Vink alle verplichte keuzes aan, of sluit de pagina als je niet akkoord gaat.",
    missing_guardian: "Vul de naam, de relatie en het e-mailadres of mobiele nummer van de ouder of voogd in.",
    unavailable_title: "Tijdelijk niet beschikbaar",
    unavailable_text: "Het is nu erg druk. Probeer het over een paar minuten opnieuw.",
    internal_title: "Er ging iets mis",
    internal_text: "Er ging bij ons iets fout. Probeer het later opnieuw.",
    status_label: "Status",
};

/// The strings of a language tag (`sv`, `nl-BE`, ...); English for anything else.
pub fn for_language(tag: &str) -> &'static Strings {
    let primary = tag
        .split(['-', '_'])
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match primary.as_str() {
        "sv" => &SV,
        "nl" => &NL,
        _ => &EN,
    }
}

/// The strings of the browser's preferred language among ours (`Accept-Language`, by its
/// q-values), for pages that know no request; English when none fits.
pub fn for_browser(req: &HttpRequest) -> &'static Strings {
    let Some(header) = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
    else {
        return &EN;
    };
    let mut best: Option<(f32, &'static Strings)> = None;
    for part in header.split(',') {
        let mut it = part.split(';');
        let tag = it.next().unwrap_or("").trim();
        let q = it
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let primary = tag.split('-').next().unwrap_or("").to_ascii_lowercase();
        let s: &'static Strings = match primary.as_str() {
            "sv" => &SV,
            "nl" => &NL,
            "en" => &EN,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, s));
        }
    }
    best.map_or(&EN, |(_, s)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages() {
        assert_eq!(for_language("sv").lang, "sv");
        assert_eq!(for_language("nl-BE").lang, "nl");
        assert_eq!(for_language("de").lang, "en");
        let req = actix_web::test::TestRequest::default()
            .insert_header((header::ACCEPT_LANGUAGE, "de;q=1, nl;q=0.5, sv;q=0.8"))
            .to_http_request();
        assert_eq!(for_browser(&req).lang, "sv");
    }
}
