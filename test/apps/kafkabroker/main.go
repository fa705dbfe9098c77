// Command kafkabroker runs franz-go's kfake, an in-memory cluster that
// speaks the Kafka wire protocol, as a process of its own: the peer the
// Kafka components are tested against over real TCP with the real client
// (there is no Apache Kafka on our build machines). It is not Apache Kafka:
// what kfake does not implement, the tests do not cover.
//
// It prints "brokers <host:port>[,<host:port>...]" on its first line of
// standard output once it listens, and runs until SIGINT or SIGTERM.
//
//	kafkabroker --partitions 4                       # plaintext, no auth
//	kafkabroker --sasl-user u --sasl-pass p --sasl-mechanism SCRAM-SHA-512
//	kafkabroker --tls-cert c.pem --tls-key k.pem [--tls-client-ca ca.pem]   # TLS, mTLS with a client CA
//	kafkabroker --data-dir /tmp/k                    # keeps the log across restarts
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	brokers := flag.Int("brokers", 1, "number of brokers")
	port := flag.Int("port", 0, "port of the first broker (0: random; the others follow it)")
	partitions := flag.Int("partitions", 4, "partitions of auto-created topics")
	saslUser := flag.String("sasl-user", "", "require SASL with this user")
	saslPass := flag.String("sasl-pass", "", "the SASL user's password")
	saslMech := flag.String("sasl-mechanism", "PLAIN", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	tlsCert := flag.String("tls-cert", "", "serve TLS with this certificate (PEM file)")
	tlsKey := flag.String("tls-key", "", "the certificate's key (PEM file)")
	clientCA := flag.String("tls-client-ca", "", "require client certificates signed by this CA (PEM file)")
	dataDir := flag.String("data-dir", "", "persist the cluster's data here across restarts")
	flag.Parse()

	opts := []kfake.Opt{
		kfake.NumBrokers(*brokers),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(*partitions),
	}
	if *port != 0 {
		ports := make([]int, *brokers)
		for i := range ports {
			ports[i] = *port + i
		}
		opts = append(opts, kfake.Ports(ports...))
	}
	if *saslUser != "" {
		opts = append(opts, kfake.EnableSASL(), kfake.Superuser(*saslMech, *saslUser, *saslPass))
	}
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			log.Fatalf("kafkabroker: %v", err)
		}
		tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if *clientCA != "" {
			pem, err := os.ReadFile(*clientCA)
			if err != nil {
				log.Fatalf("kafkabroker: %v", err)
			}
			tc.ClientCAs = x509.NewCertPool()
			if !tc.ClientCAs.AppendCertsFromPEM(pem) {
				log.Fatalf("kafkabroker: no certificate in %s", *clientCA)
			}
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
		opts = append(opts, kfake.TLS(tc))
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir), kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		log.Fatalf("kafkabroker: %v", err)
	}
	fmt.Println("brokers " + strings.Join(c.ListenAddrs(), ","))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	c.Close()
}
