package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/leakless/leakless/examples/httpserver/workspaces"
)

// client calls the workspace API over HTTP, as any user of it would.
type client struct {
	base string
	http *http.Client
}

// create POSTs a workspace under parentID (or none) and expects 201.
func (c *client) create(ctx context.Context, parentID string) (workspaces.Workspace, error) {
	body := []byte("{}")
	if parentID != "" {
		body, _ = json.Marshal(map[string]string{"parent_id": parentID})
	}
	var ws workspaces.Workspace
	status, raw, err := c.do(ctx, http.MethodPost, "/workspaces", body, &ws)
	if err != nil {
		return ws, err
	}
	if status != http.StatusCreated {
		return ws, fmt.Errorf("POST /workspaces: %d %s", status, bytes.TrimSpace(raw))
	}
	return ws, nil
}

// remove DELETEs a workspace tree. It returns the status (204 done, 202
// stopped with dependents still finishing) and, for a 500, what the API
// says is still held.
func (c *client) remove(ctx context.Context, id string) (int, *workspaces.DeleteFailure, error) {
	var fail workspaces.DeleteFailure
	status, raw, err := c.do(ctx, http.MethodDelete, "/workspaces/"+id, nil, &fail)
	switch {
	case err != nil:
		return 0, nil, err
	case status == http.StatusNoContent, status == http.StatusAccepted:
		return status, nil, nil
	case status == http.StatusInternalServerError && len(fail.Pending) > 0:
		return status, &fail, nil
	default:
		return status, nil, fmt.Errorf("DELETE /workspaces/%s: %d %s", id, status, bytes.TrimSpace(raw))
	}
}

// events reads the leak ledger through GET /events.
func (c *client) events(ctx context.Context, typ string) ([]workspaces.EventJSON, error) {
	var list workspaces.EventList
	status, raw, err := c.do(ctx, http.MethodGet, "/events?type="+url.QueryEscape(typ), nil, &list)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("GET /events: %d %s", status, bytes.TrimSpace(raw))
	}
	return list.Events, nil
}

// do sends one request and decodes a JSON answer into v.
func (c *client) do(ctx context.Context, method, path string, body []byte, v any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if len(bytes.TrimSpace(raw)) > 0 && resp.Header.Get("Content-Type") == "application/json" {
		if err := json.Unmarshal(raw, v); err != nil {
			return resp.StatusCode, raw, fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return resp.StatusCode, raw, nil
}
