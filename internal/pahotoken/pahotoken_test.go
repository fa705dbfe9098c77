package pahotoken

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

const broker = "127.0.0.1:1883"

func needBroker(t *testing.T) {
	t.Helper()
	c, err := net.DialTimeout("tcp", broker, time.Second)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Mosquitto is not reachable at %s (run scripts/services.sh): %v", broker, err)
		}
		t.Skipf("Mosquitto is not reachable at %s (run scripts/services.sh): %v", broker, err)
	}
	c.Close()
}

func client(addr string) mqtt.Client {
	return mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).
		SetClientID("pahotoken-test-" + time.Now().Format("150405.000000000")).SetConnectRetry(false))
}

func TestConnectGivenUpIsClosed(t *testing.T) {
	needBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c := client(broker)
	if err := Connect(ctx, c, 5*time.Second); err != context.Canceled {
		t.Fatalf("Connect with an ended context: %v, want context.Canceled", err)
	}
	// Disconnect finishes in the background; it must finish soon.
	for deadline := time.Now().Add(5 * time.Second); c.IsConnectionOpen(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the client a cancelled Connect gave up on is still connected after 5s")
		}
	}
}

func TestConnectAndWait(t *testing.T) {
	needBroker(t)
	c := client(broker)
	if err := Connect(context.Background(), c, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(0)
	if err := Wait(context.Background(), c.Publish("pahotoken/test", 1, false, "x"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestConnectRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := client(addr)
	if err := Connect(context.Background(), c, 5*time.Second); err == nil {
		t.Fatal("Connect to a closed port succeeded")
	}
	if c.IsConnected() {
		t.Fatal("connected to a closed port")
	}
}

type never struct{ mqtt.Token }

func (never) Done() <-chan struct{} { return nil }

func TestWaitTimesOut(t *testing.T) {
	start := time.Now()
	if err := Wait(context.Background(), never{}, 50*time.Millisecond); err == nil {
		t.Fatal("Wait on a token that never completes returned nil")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Wait took %s with a 50ms limit", d)
	}
}
