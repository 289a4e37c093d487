// Package safelog makes log lines safe to write about terms that came from
// the network: it formats any value at a cost bounded by the line, never by
// the value, and it limits how often one kind of line is written.
//
// # Formatting
//
// Format (and T, for log calls) prints a value the way an Erlang user
// reads it ({a,b}, [1,2], #{k => v}, <<"text">>, <node.12.1>), Go values
// through reflection, and stops at Limits: at most MaxBytes bytes in all,
// MaxDepth levels of nesting, MaxItems elements of each tuple, list or map,
// and MaxString bytes of each string, atom or binary. What is left out is
// marked with … and, where the length is known without walking, how much
// was left out: a 100 MB binary prints as its first bytes and
// …(+104857536 bytes); a list nested a million deep prints MaxDepth levels.
// The formatter never recurses deeper than MaxDepth, never reads more than
// MaxItems elements of a container nor more than MaxString bytes of a
// string, so its cost is O(MaxBytes) whatever it is given: no stack
// overflow, no huge line, no time spent on a term that was sent to hurt.
//
// Control characters and invalid UTF-8 are escaped, so a term cannot
// forge log lines (a newline in an atom prints as \n).
//
// Values of types the formatter does not know are walked with reflection
// under the same limits; it never calls their String or Format methods,
// which could walk the whole value. The exception is error: its Error
// method is called (errors are made by our code, not received), and its
// text is cut at MaxBytes.
//
// # Rate limiting
//
// A Limiter lets at most Lines lines of one key through per Per (a token
// bucket of golang.org/x/time/rate per key, so a burst of Lines passes at
// once), counts the lines it holds back, and adds that count to the next
// line of the key it lets through, as the attribute suppressed=K. Keys are
// kinds of lines ("pg.forged"), not values that a peer chooses; the number
// of keys kept is bounded anyway (MaxKeys), and keys beyond it share one
// bucket. Warn, Error and Info log through the package's Default limiter.
package safelog
