package workspaces_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/leakless/leakless/examples/httpserver/workspaces"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// The API in memory over a fake EC2: create a workspace and a child, then
// delete the tree.
func ExampleNew() {
	fake := ec2fake.New()
	defer fake.Close()
	client := ec2.New(ec2.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(fake.URL()),
		HTTPClient:   fake.Client(),
		Credentials:  credentials.NewStaticCredentialsProvider("id", "secret", ""),
	})
	owner := map[string]string{"leakless:owner": "example"}
	stopper, err := awsec2.New(client, awsec2.WithOwner(owner))
	if err != nil {
		panic(err)
	}

	mem := workspaces.NewMemory()
	sink := workspaces.NewMemoryEvents()
	h, err := workspaces.New(workspaces.Config{
		Store: mem, Rows: mem, Events: sink, Ledger: sink,
		EC2: client, Stopper: stopper, Owner: owner,
	})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	do := func(method, path, body string) *http.Response {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := srv.Client().Do(req)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		return resp
	}
	root := do("POST", "/workspaces", "")
	fmt.Println("POST", root.StatusCode)
	rootPath := root.Header.Get("Location")
	rootID := strings.TrimPrefix(rootPath, "/workspaces/")
	fmt.Println("POST child", do("POST", "/workspaces", `{"parent_id":"`+rootID+`"}`).StatusCode)
	fmt.Println("DELETE", do("DELETE", rootPath, "").StatusCode)
	fmt.Println("DELETE again", do("DELETE", rootPath, "").StatusCode)
	for _, inst := range fake.Instances() {
		fmt.Println(inst.ID, inst.State)
	}
	// Output:
	// POST 201
	// POST child 201
	// DELETE 204
	// DELETE again 204
	// i-00000000000000002 terminated
	// i-00000000000000004 terminated
}
