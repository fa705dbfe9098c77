package injector

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	admissionclient "k8s.io/client-go/kubernetes/typed/admissionregistration/v1"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/sentry/ca"
)

// Names of the webhook configuration the chart installs (Dapr's).
const (
	WebhookConfiguration = "dapr-sidecar-injector"
	WebhookName          = "sidecar-injector.dapr.io"
)

// CABundle keeps the caBundle of the webhook configuration equal to the
// trust anchors that verify the injector's certificate, as Dapr's injector
// does: the chart ships no certificate of its own, the injector serves
// with the X.509 SVID sentry gave it, and the API server checks it against
// the roots patched in here. It patches at start and whenever the anchors
// change (a root rotation), with a JSON patch that tests the webhook's
// name, so its RBAC is "patch" on this one object.
type CABundle struct {
	Client admissionclient.MutatingWebhookConfigurationInterface
	// Name of the MutatingWebhookConfiguration (WebhookConfiguration if
	// empty); its first webhook must be WebhookName.
	Name string
	// Source holds the trust anchors; its Changed channel wakes the patcher.
	Source *identity.Source
	// Ready, if set, is called after every successful patch.
	Ready func()
	// RetryInterval between failed patches (3s if zero).
	RetryInterval time.Duration
	Log           *slog.Logger
}

// Run patches until ctx ends. A failed patch (the configuration missing,
// RBAC) is logged and retried; it never stops the injector, whose webhook
// the API server then refuses to call, which fails closed.
func (c *CABundle) Run(ctx context.Context) error {
	name := c.Name
	if name == "" {
		name = WebhookConfiguration
	}
	retry := c.RetryInterval
	if retry <= 0 {
		retry = 3 * time.Second
	}
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var patched []byte
	for {
		changed := c.Source.Changed()
		var again <-chan time.Time
		if bundle := ca.EncodeCertificates(c.Source.TrustAnchors()); len(bundle) > 0 && string(bundle) != string(patched) {
			if err := c.patch(ctx, name, bundle); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				log.Warn("cannot set the webhook's caBundle; retrying (the API server cannot call the injector meanwhile)",
					"webhook_configuration", name, "error", err, "retry_in", retry)
				again = time.After(retry)
			} else {
				patched = bundle
				log.Info("webhook caBundle set to the trust anchors", "webhook_configuration", name, "anchors", len(c.Source.TrustAnchors()))
				if c.Ready != nil {
					c.Ready()
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-again:
		}
	}
}

func (c *CABundle) patch(ctx context.Context, name string, bundle []byte) error {
	patch, err := CABundlePatch(bundle)
	if err != nil {
		return err
	}
	if _, err := c.Client.Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: "tandem-injector"}); err != nil {
		return fmt.Errorf("patch MutatingWebhookConfiguration %s: %w", name, err)
	}
	return nil
}

// CABundlePatch is the JSON patch that sets the first webhook's caBundle,
// after testing that it is the injector's webhook.
func CABundlePatch(bundle []byte) ([]byte, error) {
	if len(bundle) == 0 {
		return nil, errors.New("no trust anchors for the webhook's caBundle")
	}
	return json.Marshal([]patchOp{
		{Op: "test", Path: "/webhooks/0/name", Value: WebhookName},
		{Op: "add", Path: "/webhooks/0/clientConfig/caBundle", Value: base64.StdEncoding.EncodeToString(bundle)},
	})
}
