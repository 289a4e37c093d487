package safelog_test

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/ergo-services/ergo/etf"

	"github.com/ergonx/ergonx/internal/safelog"
)

// A term from the network is printed within bounds, whatever its size.
func ExampleFormat() {
	huge := etf.Tuple{etf.Atom("infer"), []byte(strings.Repeat("x", 1<<20))}
	fmt.Println(safelog.Limits{MaxString: 8}.Format(huge))

	var deep etf.Term = etf.List{}
	for range 1000 {
		deep = etf.List{deep}
	}
	fmt.Println(safelog.Limits{MaxDepth: 3}.Format(deep))
	// Output:
	// {infer,<<"xxxxxxxx">>…(+1048568 bytes)}
	// [[[[…]]]]
}

// A flood of one kind of line is cut to Lines per Per; the next line that
// passes says how many were held back.
func ExampleLimiter() {
	l := safelog.NewLimiter(2, 0)
	l.Logger = slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	for i := range 5 {
		l.Warn("peer.bad", "dropped a message", "message", safelog.T(etf.Tuple{etf.Atom("bad"), i}))
	}
	// Output:
	// level=WARN msg="dropped a message" message={bad,0}
	// level=WARN msg="dropped a message" message={bad,1}
}
