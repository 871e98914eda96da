package natsembed_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natsembed"
	"github.com/takumo/audit/platform/natstest"
)

func TestStartRefusesToRunWithoutUsers(t *testing.T) {
	if srv, err := natsembed.Start(natsembed.Config{StoreDir: t.TempDir()}); err == nil {
		srv.Close()
		t.Fatal("a server without users started")
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "audit-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// With a certificate the listener requires TLS: a client with the CA and
// its credentials connects, a plaintext client does not; in-process
// connections are unaffected.
func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	srv, keys := natstest.StartServer(t, natsembed.Config{Listen: "127.0.0.1:0", TLSCert: cert, TLSKey: key})
	seed := filepath.Join(dir, "producer.nk")
	if err := natsauth.WriteSeedFile(seed, keys[natsauth.Producer]); err != nil {
		t.Fatal(err)
	}
	opts, err := natsauth.ClientConfig{CredsFile: seed, CAFile: cert}.Options(natsauth.Producer)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("TLS client with the CA: %v", err)
	}
	if !nc.TLSRequired() {
		t.Error("the connection is not TLS")
	}
	nc.Close()
	plain, err := natsauth.Options(keys[natsauth.Producer])
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(srv.ClientURL(), append(plain, nats.Secure(nil))...); err == nil {
		nc.Close()
		t.Error("a client without the CA connected")
	}
	natstest.Connect(t, srv, keys[natsauth.Admin])
}

// A clustered server needs a name for its cluster, a client listener to
// fail over to, and both route credentials or neither.
func TestClusterConfigIsChecked(t *testing.T) {
	keys, err := natsauth.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	users, err := natsauth.ServerUsers(keys)
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]natsembed.Config{
		"no cluster name":   {Listen: "127.0.0.1:0", Cluster: &natsembed.Cluster{Listen: "127.0.0.1:0"}},
		"no client listen":  {Cluster: &natsembed.Cluster{Name: "c", Listen: "127.0.0.1:0"}},
		"half credentials":  {Listen: "127.0.0.1:0", Cluster: &natsembed.Cluster{Name: "c", Listen: "127.0.0.1:0", Username: "route"}},
		"bad route address": {Listen: "127.0.0.1:0", Cluster: &natsembed.Cluster{Name: "c", Listen: "nowhere"}},
	} {
		cfg.StoreDir, cfg.Users = t.TempDir(), users
		if srv, err := natsembed.Start(cfg); err == nil {
			srv.Close()
			t.Errorf("%s: server started", name)
		}
	}
}
