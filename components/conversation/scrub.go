package conversation

import "regexp"

// entity is one kind of personal data Scrub replaces, with its
// placeholder (the names Dapr's scrubber answers with).
type entity struct {
	re          *regexp.Regexp
	placeholder string
}

// entities are tried in order, each on the text the ones before left: the
// precise shapes (e-mail, IP and MAC addresses, IBAN) go before the loose
// digit runs (card, SSN, phone), so that "10.8.9.1" is an <IP>, not a
// phone number, and a placeholder, having no digits, is never matched
// again.
var entities = []entity{
	{regexp.MustCompile(`(?i)[a-z0-9!#$%&'*+/=?^_{|.}~-]+@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?`), "<EMAIL_ADDRESS>"},
	{regexp.MustCompile(`\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\b`), "<IP>"},
	{regexp.MustCompile(`(?i)\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|(?:\b[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}\b(?::[0-9a-f]{1,4}\b)*)?`), "<IP>"},
	{regexp.MustCompile(`(?i)\b[0-9a-f]{2}(?:[:-][0-9a-f]{2}){5}\b`), "<MAC_ADDRESS>"},
	{regexp.MustCompile(`\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b`), "<IBAN>"},
	{regexp.MustCompile(`\b(?:[0-9]{4}[ -]?){3}[0-9]{4}\b|\b3[47][0-9]{2}[ -]?[0-9]{6}[ -]?[0-9]{5}\b`), "<CREDIT_CARD>"},
	{regexp.MustCompile(`\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b`), "<US_SSN>"},
	{regexp.MustCompile(`(?i)\bP\.? ?O\.? *Box +[0-9]+\b`), "<PO_BOX>"},
	{regexp.MustCompile(`(?:\+|\b)(?:[0-9][ .()-]{0,2}){7,14}[0-9]\b`), "<PHONE_NUMBER>"},
}

// Scrub replaces the personal data it finds in text (e-mail, IP and MAC
// addresses, IBANs, card numbers, US social security numbers, PO boxes
// and phone numbers) with placeholders such as <EMAIL_ADDRESS>, as Dapr's
// scrubPII option does.
func Scrub(text string) string {
	for _, e := range entities {
		text = e.re.ReplaceAllLiteralString(text, e.placeholder)
	}
	return text
}
