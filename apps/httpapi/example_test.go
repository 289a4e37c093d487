package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/apps/httpapi"
	"github.com/ergonx/ergonx/serving"
)

// A Handler serves the predict route of servings over HTTP: here one
// started without a node, in this process.
func ExampleHandler() {
	double := serving.JIT(func(in any) (any, error) {
		return in.(*tensor.Dense).MulScalar(float32(2), true)
	})
	sv, err := serving.Start(nil, serving.Options{Name: "double", Serving: double, BatchSize: 8, BatchTimeout: time.Millisecond})
	if err != nil {
		panic(err)
	}
	defer sv.Stop(context.Background())

	h, err := httpapi.NewHandler(nil, httpapi.Options{Servings: []httpapi.Serving{{
		Name: "double",
		Row:  &httpapi.Row{DType: tensor.Float32, Shape: []int{3}},
	}}})
	if err != nil {
		panic(err)
	}
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()

	post := func(body string) {
		resp, err := http.Post(srv.URL+"/v1/servings/double/predict", "application/json", strings.NewReader(body))
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		fmt.Print(resp.StatusCode, " ", string(out))
	}
	post(`{"shape":[2,3],"dtype":"float32","data":[1,2,3,4,5,6]}`)
	post(`{"shape":[1,2],"dtype":"float32","data":[1,2]}`)
	// Output:
	// 200 {"shape":[2,3],"dtype":"float32","data":[2,4,6,8,10,12]}
	// 400 {"error":"httpapi: bad shape: serving \"double\" takes rows of float32[3], a tensor of shape [n, 3]; got shape [1 2]","reason":"bad_shape","serving":"double"}
}
