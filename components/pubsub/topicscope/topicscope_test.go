package topicscope

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/tandemrun/tandem/components"
)

func md(props ...string) components.Metadata {
	m := components.Metadata{Name: "pubsub", Properties: map[string]string{}}
	for i := 0; i+1 < len(props); i += 2 {
		m.Properties[props[i]] = props[i+1]
	}
	return m
}

// decisionCases are Dapr's documented examples plus the edges of the rule;
// they also seed the fuzz test.
var decisionCases = []struct {
	name  string
	props []string
	// checks: "op app topic" -> allowed; op is p(ublish) or s(ubscribe).
	allow, deny []string
	// field the first denial of deny names.
	field string
}{
	{
		name:  "nothing set",
		props: []string{"redisHost", "localhost:6379"},
		allow: []string{"p app1 any", "s app1 any"},
	},
	{
		name: "docs example 1: scopes",
		props: []string{
			PublishingScopes, "app1=topic1;app2=topic2,topic3;app3=",
			SubscriptionScopes, "app2=;app3=topic1",
		},
		allow: []string{"p app1 topic1", "p app2 topic2", "p app2 topic3", "s app1 topic1", "s app1 topic2", "s app1 topic3", "s app3 topic1", "p app4 topic9"},
		deny:  []string{"p app1 topic2", "p app3 topic1", "s app2 topic1", "s app3 topic2"},
		field: PublishingScopes,
	},
	{
		name:  "docs example 2: allowedTopics",
		props: []string{AllowedTopics, "topic1,topic2,topic3"},
		allow: []string{"p app1 topic1", "s app2 topic3"},
		deny:  []string{"p app1 topic4", "s app1 topic4"},
		field: AllowedTopics,
	},
	{
		name:  "allowedTopics wins over a scope that grants the topic",
		props: []string{AllowedTopics, "topic1", PublishingScopes, "app1=topic1,topic2"},
		allow: []string{"p app1 topic1"},
		deny:  []string{"p app1 topic2", "p app2 topic2"},
		field: AllowedTopics,
	},
	{
		name:  "allowedTopics and scopes combine",
		props: []string{AllowedTopics, "topic1,topic2", SubscriptionScopes, "app1=topic1"},
		allow: []string{"s app1 topic1", "s app2 topic2", "p app1 topic2"},
		deny:  []string{"s app1 topic2", "s app1 topic3"},
		field: SubscriptionScopes,
	},
	{
		name:  "protected topic needs a grant",
		props: []string{ProtectedTopics, "secret", PublishingScopes, "app1=secret", SubscriptionScopes, "app2=secret,public"},
		allow: []string{"p app1 secret", "s app2 secret", "p app3 public", "s app3 public", "s app2 public"},
		deny:  []string{"p app3 secret", "p app2 secret", "s app1 secret", "s app3 secret"},
		field: PublishingScopes,
	},
	{
		name:  "white space, case of the field name, repeated app, trailing separators",
		props: []string{"PUBLISHINGSCOPES", " app1 = topic1 ,\n\ttopic2 ; app1=topic3;;app2=topic1,"},
		// App IDs and topics are matched exactly: App1 is not listed.
		allow: []string{"p app1 topic1", "p app1 topic2", "p app1 topic3", "p app2 topic1", "p App1 topic9"},
		deny:  []string{"p app2 topic2", "p app1 Topic1"},
		field: PublishingScopes,
	},
	{
		name:  "entry without = is ignored (Dapr), so the app is not restricted",
		props: []string{PublishingScopes, "app1;app2=topic1"},
		allow: []string{"p app1 topic9", "p app2 topic1"},
		deny:  []string{"p app2 topic9"},
		field: PublishingScopes,
	},
	{
		name:  "allowedTopics naming no topic allows none (Dapr)",
		props: []string{AllowedTopics, " , "},
		deny:  []string{"p app1 topic1", "s app1 topic1"},
		field: AllowedTopics,
	},
	{
		name:  "empty values are unset",
		props: []string{AllowedTopics, "", PublishingScopes, "", ProtectedTopics, ""},
		allow: []string{"p app1 topic1"},
	},
	{
		name:  "a second = cuts the list as in Dapr",
		props: []string{PublishingScopes, "app1=topic1=app2=topic2"},
		allow: []string{"p app1 topic1", "p app2 topic2"},
		deny:  []string{"p app1 topic2"},
		field: PublishingScopes,
	},
}

func check(t *testing.T, s *Scopes, c string) error {
	t.Helper()
	f := strings.Fields(c)
	op := Publish
	if f[0] == "s" {
		op = Subscribe
	}
	err := s.Check(op, f[1], f[2])
	can := s.CanPublish(f[1], f[2])
	if op == Subscribe {
		can = s.CanSubscribe(f[1], f[2])
	}
	if can != (err == nil) {
		t.Errorf("%s: Can* = %v but Check = %v", c, can, err)
	}
	return err
}

func TestDecision(t *testing.T) {
	for _, tc := range decisionCases {
		t.Run(tc.name, func(t *testing.T) {
			s := Parse(md(tc.props...))
			for _, c := range tc.allow {
				if err := check(t, s, c); err != nil {
					t.Errorf("%s: denied: %v", c, err)
				}
			}
			for i, c := range tc.deny {
				err := check(t, s, c)
				var d *DeniedError
				if !errors.As(err, &d) {
					t.Errorf("%s: allowed, want denied", c)
					continue
				}
				f := strings.Fields(c)
				if d.AppID != f[1] || d.Topic != f[2] || d.Component != "pubsub" {
					t.Errorf("%s: DeniedError = %+v", c, d)
				}
				// The message names app, topic and the field to change.
				for _, want := range []string{f[1], f[2], d.Field} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%s: %q does not name %q", c, err, want)
					}
				}
				if !strings.Contains(d.Reason(), d.Field) {
					t.Errorf("%s: reason %q does not name %s", c, d.Reason(), d.Field)
				}
				if i == 0 && d.Field != tc.field {
					t.Errorf("%s: field = %s, want %s", c, d.Field, tc.field)
				}
			}
		})
	}
}

func TestProtectedReasonSaysHowToGrant(t *testing.T) {
	s := Parse(md(ProtectedTopics, "secret"))
	err := s.Check(Subscribe, "app9", "secret")
	if err == nil || !strings.Contains(err.Error(), ProtectedTopics) || !strings.Contains(err.Error(), "subscriptionScopes (app9=secret)") {
		t.Errorf("error = %v", err)
	}
}

func TestParse(t *testing.T) {
	if s := Parse(md("redisHost", "x")); s != nil {
		t.Errorf("no scoping fields: %+v, want nil", s)
	}
	var none *Scopes
	if !none.CanPublish("a", "t") || !none.CanSubscribe("a", "t") || none.Ignored() != nil {
		t.Error("a nil *Scopes must allow everything")
	}
	s := Parse(md(PublishingScopes, "app1;=t1;app2=t2=t3", AllowedTopics, ","))
	want := []string{`entry "app1" has no "="`, `entry "=t1" names no app`, `entry "app2=t2=t3" has a second "="`, "names no topic"}
	got := s.Ignored()
	if len(got) != len(want) {
		t.Fatalf("ignored = %q", got)
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("ignored[%d] = %q, want it to contain %q", i, got[i], want[i])
		}
	}
	if s := Parse(md(PublishingScopes, "app1=t1")); len(s.Ignored()) != 0 {
		t.Errorf("clean value: ignored = %q", s.Ignored())
	}
}

func TestStrip(t *testing.T) {
	in := map[string]string{"redisHost": "h", "PublishingScopes": "a=b", "subscriptionscopes": "a=", AllowedTopics: "t", ProtectedTopics: "t", "consumerID": "c"}
	orig := maps.Clone(in)
	out := Strip(in)
	keys := slices.Sorted(maps.Keys(out))
	if !slices.Equal(keys, []string{"consumerID", "redisHost"}) {
		t.Errorf("Strip kept %v", keys)
	}
	if !maps.Equal(in, orig) {
		t.Error("Strip changed its input")
	}
	clean := map[string]string{"redisHost": "h"}
	if out := Strip(clean); len(out) != 1 {
		t.Errorf("Strip(clean) = %v", out)
	}
	if Strip(nil) != nil {
		t.Error("Strip(nil) != nil")
	}
	for _, f := range fields {
		if !IsField(strings.ToUpper(f)) {
			t.Errorf("IsField(%s) = false", f)
		}
	}
	if IsField("topics") {
		t.Error(`IsField("topics") = true`)
	}
}

// FuzzParse checks that no metadata value makes Parse or the decision
// panic, and that the decision keeps its invariants: allowedTopics is a
// hard limit, an app not listed anywhere may use any allowed, unprotected
// topic, and a denial names a field.
func FuzzParse(f *testing.F) {
	for _, tc := range decisionCases {
		v := map[string]string{}
		for i := 0; i+1 < len(tc.props); i += 2 {
			v[strings.ToLower(tc.props[i])] = tc.props[i+1]
		}
		f.Add(v[strings.ToLower(PublishingScopes)], v[strings.ToLower(SubscriptionScopes)], v[strings.ToLower(AllowedTopics)], v[strings.ToLower(ProtectedTopics)], "app1", "topic1")
	}
	f.Add("a=b=c;;=;=x;y", "\x00=\xff", ",,,", ";", "", "")
	f.Fuzz(func(t *testing.T, pub, sub, allowed, protected, app, topic string) {
		s := Parse(md(PublishingScopes, pub, SubscriptionScopes, sub, AllowedTopics, allowed, ProtectedTopics, protected))
		_ = s.Ignored()
		for _, op := range []Op{Publish, Subscribe} {
			err := s.Check(op, app, topic)
			if err == nil {
				if s != nil && s.allowed != nil && !s.allowed.has(topic) {
					t.Fatalf("%s %q allowed outside allowedTopics %q", op, topic, allowed)
				}
				continue
			}
			var d *DeniedError
			if !errors.As(err, &d) || d.Field == "" || err.Error() == "" {
				t.Fatalf("denial without a field: %v", err)
			}
			// An app nobody lists is refused only by allowedTopics or
			// protectedTopics.
			if d.Field != AllowedTopics {
				scopes := s.publish
				if op == Subscribe {
					scopes = s.subscribe
				}
				if _, listed := scopes[app]; !listed && !s.protected.has(topic) {
					t.Fatalf("unlisted app %q refused %s %q: %v", app, op, topic, err)
				}
			}
		}
	})
}
