// A stand-in for pomerium-cli's TCP tunnel data path, for the benchmark only: crypto/tls with
// ALPN http/1.1, an HTTP/1.1 CONNECT with the token, http.ReadResponse on a bufio.Reader, then
// two io.Copy goroutines (32 KiB buffers), as pomerium-cli's tcptunnel does. Standard library only.
//
//	burrow-bench-go-client -proxy localhost:PORT -dest host:port -ca ca.pem [-listen -|127.0.0.1:0]
//	(token in BENCH_TOKEN; in listener mode the bound port is printed alone on stdout)
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
)

type tunnel struct {
	proxy  string
	dest   string
	token  string
	config *tls.Config
}

// open dials the proxy and sends CONNECT; it returns the connection and the reader that holds
// whatever the proxy sent after its answer.
func (t *tunnel) open() (net.Conn, io.Reader, error) {
	conn, err := tls.Dial("tcp", t.proxy, t.config)
	if err != nil {
		return nil, nil, err
	}
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: t.dest},
		Host:   t.dest,
		Header: http.Header{"Authorization": {"Pomerium " + t.token}},
	}
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, nil, err
	}
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if res.StatusCode != http.StatusOK {
		conn.Close()
		return nil, nil, fmt.Errorf("proxy answered %s", res.Status)
	}
	return conn, br, nil
}

// run copies both ways until both directions end, half-closing as each one does.
func run(remote net.Conn, fromRemote io.Reader, localIn io.Reader, localOut io.Writer, closeLocalWrite func()) {
	done := make(chan struct{}, 2)
	go func() {
		io.Copy(remote, localIn)
		if tc, ok := remote.(*tls.Conn); ok {
			tc.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		io.Copy(localOut, fromRemote)
		closeLocalWrite()
		done <- struct{}{}
	}()
	<-done
	<-done
	remote.Close()
}

func main() {
	proxy := flag.String("proxy", "", "proxy host:port")
	dest := flag.String("dest", "", "destination host:port")
	caPath := flag.String("ca", "", "CA certificate (PEM)")
	listen := flag.String("listen", "-", "- for stdin/stdout, else a local address")
	flag.Parse()
	host, _, err := net.SplitHostPort(*proxy)
	if err != nil {
		fail(err)
	}
	pem, err := os.ReadFile(*caPath)
	if err != nil {
		fail(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	t := &tunnel{proxy: *proxy, dest: *dest, token: os.Getenv("BENCH_TOKEN"), config: &tls.Config{RootCAs: pool, ServerName: host, NextProtos: []string{"http/1.1"}}}

	if *listen == "-" {
		remote, fromRemote, err := t.open()
		if err != nil {
			fail(err)
		}
		run(remote, fromRemote, os.Stdin, os.Stdout, func() { os.Stdout.Close() })
		return
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fail(err)
	}
	fmt.Println(strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	for {
		local, err := ln.Accept()
		if err != nil {
			fail(err)
		}
		go func(local net.Conn) {
			defer local.Close()
			remote, fromRemote, err := t.open()
			if err != nil {
				fmt.Fprintln(os.Stderr, "go-client:", err)
				return
			}
			run(remote, fromRemote, local, local, func() { local.(*net.TCPConn).CloseWrite() })
		}(local)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "go-client:", err)
	os.Exit(1)
}
