package conversation

import "testing"

func TestScrub(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"well hello there", "well hello there"},
		{"well hello there, my phone number is +2222222222", "well hello there, my phone number is <PHONE_NUMBER>"},
		{"call +44 20 7946 0958 now", "call <PHONE_NUMBER> now"},
		{"well hello there, my email is test@test.com", "well hello there, my email is <EMAIL_ADDRESS>"},
		{"well hello there from 10.8.9.1", "well hello there from <IP>"},
		{"from 2001:db8::1 today", "from <IP> today"},
		{"nic 00:1a:2b:3c:4d:5e", "nic <MAC_ADDRESS>"},
		{"card 4111 1111 1111 1111", "card <CREDIT_CARD>"},
		{"ssn 123-45-6789", "ssn <US_SSN>"},
		{"iban GB82 WEST 1234 5698 7654 32", "iban <IBAN>"},
		{"PO Box 1234", "<PO_BOX>"},
		{"in 2026 at 10:30 we met 3 people", "in 2026 at 10:30 we met 3 people"},
	} {
		if got := Scrub(tc.in); got != tc.want {
			t.Errorf("Scrub(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzScrub(f *testing.F) {
	for _, s := range []string{"a@b.co", "10.0.0.1", "+1 555 123 4567", "plain"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		once := Scrub(s)
		if again := Scrub(once); again != once {
			t.Fatalf("Scrub is not idempotent: %q -> %q -> %q", s, once, again)
		}
	})
}
