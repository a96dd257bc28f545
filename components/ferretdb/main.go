// A FerretDB server for the tests: MongoDB's wire protocol on SQLite, from FerretDB's embeddable
// package (a build of its own command would need FerretDB's release tooling to stamp a version).
//
//	ferretdb -listen 127.0.0.1:PORT [-tls-listen 127.0.0.1:PORT -cert FILE -key FILE] -data DIR
package main

import (
	"context"
	"flag"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address")
	tlsListen := flag.String("tls-listen", "", "TLS address (with -cert and -key)")
	cert := flag.String("cert", "", "server certificate (PEM)")
	key := flag.String("key", "", "server key (PEM)")
	data := flag.String("data", "", "SQLite folder")
	flag.Parse()

	if err := os.MkdirAll(*data, 0o700); err != nil {
		log.Fatal(err)
	}
	server, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen, TLS: *tlsListen, TLSCertFile: *cert, TLSKeyFile: *key},
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Handler:   "sqlite",
		SQLiteURL: "file:" + *data + "/",
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log.Printf("listening on %s", server.MongoDBURI())
	if err := server.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
