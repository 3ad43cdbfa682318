# Common commands. Everything here also works without just: copy the line.

# run the server on its defaults (mesh.db here, http://127.0.0.1:8000)
run:
    go run . serve

# build a static binary ./mesh
build:
    CGO_ENABLED=0 go build -ldflags='-s -w' -o mesh .

# the README's test command, with the race detector as CI runs it
test:
    go test -race ./...

# benchmarks that print figures (login latency per bcrypt cost, ...)
bench:
    go test -run '^$' -bench . -benchtime 20x ./...

# gofmt, go vet, staticcheck
lint:
    test -z "$(gofmt -l .)"
    go vet ./...
    go run honnef.co/go/tools/cmd/staticcheck@latest ./...

# import direction between packages (STYLE.md §1)
deps:
    bash .ci/deps

# fuzz every network decoder for a while (default 1 minute each)
fuzz time="1m":
    for p in $(go list ./...); do for t in $(go test -list 'Fuzz.*' $p | grep ^Fuzz || true); do go test -run '^$' -fuzz "^$t\$" -fuzztime {{time}} $p; done; done

# the benchmarks with a figure in an issue: fan-out, idle memory, persistence, 1 GiB transfer
bench-issues:
    go test -run '^$' -bench 'Fanout|IdleMemory|Persist|Transfer' -benchtime 1x ./e2e ./agent/peer

# relayed UDP through mesh serve's TURN server beside coturn's turnserver
# (installed when missing): MB/s, server CPU-s per GiB, loss
bench-turn:
    command -v turnserver >/dev/null || (apt-get update && apt-get install -y coturn)
    go test ./e2e -run '^$' -bench TURNRelay -benchtime 1x -count 1

# 1 GiB send-file direct and relayed through mesh serve (UDP between the
# agents dropped in a network lab; needs root), beside croc through its own
# relay (installed into GOPATH/bin when missing): MB/s, CPU-s/GiB per
# process, time to first byte. '^BenchmarkRelay$', not 'Relay': that also
# matches BenchmarkTURNRelay.
bench-relay:
    command -v croc >/dev/null || test -x "$(go env GOPATH)/bin/croc" || go install github.com/schollz/croc/v10@latest
    go test ./e2e -run '^$' -bench '^BenchmarkRelay$' -benchtime 1x -count 1

# the soak of the README's hardening table: 1,000 users for 10 minutes with
# a SIGKILL restart, transfers with an agent kill, a terminal share, a
# stalled client ('just soak 100 1m' for a quick one)
soak users="1000" duration="10m":
    go test -run '^TestSoak$' -v -count=1 -timeout 60m ./e2e -soak.users {{users}} -soak.duration {{duration}} -soak.interval 10s -soak.transfers 10 -soak.file-mib 256

# issue 16's figures in one run: loopback bare quic-go vs send-file (CPU per side, first byte),
# an emulated 50 ms / 500 Mbit/s WAN clean and at 0.5% loss beside croc (root; netem, or
# e2e/testdata/wanem where the kernel lacks it), 2,020 small files vs tar, resume at 50%,
# mesh serve start-up. MESH_BENCH_PERF=DIR adds a perf record of the loopback send.
bench-transfer:
    command -v croc >/dev/null || test -x "$(go env GOPATH)/bin/croc" || go install github.com/schollz/croc/v10@v10.7.0
    go test ./e2e -run '^$' -bench 'Transfer' -benchtime 1x -count 1

# what CI runs
ci:
    bash .ci/run
