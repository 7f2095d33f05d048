// Command smtpbench sends N messages of SIZE bytes over one implicit-TLS
// connection with Go's net/smtp (standard library only), reusing the
// connection: MAIL, RCPT, DATA and, unless -rset=false, RSET per message,
// each waiting for its reply as net/smtp does. It is the Go column of
// BENCHMARKS.md's throughput and round-trip tables and talks only to
// loopback addresses.
//
//	go build -o /tmp/smtpbench . && /tmp/smtpbench -addr 127.0.0.1:10465 -ca /tmp/ca.pem -n 10000
//
// It prints one line of key=value pairs: the time to open (TCP, TLS,
// greeting, EHLO, AUTH), the time for the N messages after it, and msgs/s
// over both.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"strings"
	"time"
)

func message(size, n int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: a@example.org\r\nTo: b@example.org\r\nSubject: bench %d\r\n\r\n", n)
	line := "body line of the benchmark message, seventy-odd bytes long, padding.\r\n"
	for b.Len()+len(line) <= size {
		b.WriteString(line)
	}
	for b.Len() < size-2 {
		b.WriteByte('x')
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "smtpbench: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:10465", "server address (loopback only)")
	caFile := flag.String("ca", "", "PEM file of the CA to trust (the testkit's)")
	name := flag.String("name", "localhost", "server name to verify")
	n := flag.Int("n", 1000, "messages")
	size := flag.Int("size", 2048, "bytes a message")
	user := flag.String("user", "bench", "AUTH PLAIN user")
	password := flag.String("password", "bench-password", "AUTH PLAIN password")
	rset := flag.Bool("rset", true, "RSET after each message")
	flag.Parse()

	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		fail("address: %v", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		fail("%s is not a loopback address", host)
	}
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		fail("CA file: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		fail("no certificate in %s", *caFile)
	}
	bodies := make([][]byte, *n)
	for i := range bodies {
		bodies[i] = message(*size, i)
	}

	started := time.Now()
	conn, err := tls.Dial("tcp", *addr, &tls.Config{RootCAs: roots, ServerName: *name})
	if err != nil {
		fail("dial: %v", err)
	}
	client, err := smtp.NewClient(conn, *name)
	if err != nil {
		fail("greeting: %v", err)
	}
	if err := client.Hello("go.example.org"); err != nil {
		fail("EHLO: %v", err)
	}
	if err := client.Auth(smtp.PlainAuth("", *user, *password, *name)); err != nil {
		fail("AUTH: %v", err)
	}
	opened := time.Now()
	for i, body := range bodies {
		if err := client.Mail("a@example.org"); err != nil {
			fail("MAIL %d: %v", i, err)
		}
		if err := client.Rcpt("r0@example.org"); err != nil {
			fail("RCPT %d: %v", i, err)
		}
		w, err := client.Data()
		if err != nil {
			fail("DATA %d: %v", i, err)
		}
		if _, err := w.Write(body); err != nil {
			fail("body %d: %v", i, err)
		}
		if err := w.Close(); err != nil {
			fail("end of data %d: %v", i, err)
		}
		if *rset {
			if err := client.Reset(); err != nil {
				fail("RSET %d: %v", i, err)
			}
		}
	}
	done := time.Now()
	if err := client.Quit(); err != nil && !strings.Contains(err.Error(), "EOF") {
		fail("QUIT: %v", err)
	}
	fmt.Printf("go=%s messages=%d open_s=%.6f send_s=%.6f msgs_per_s=%.1f\n",
		strings.TrimPrefix(goVersion(), "go"), *n,
		opened.Sub(started).Seconds(), done.Sub(opened).Seconds(),
		float64(*n)/done.Sub(started).Seconds())
}
