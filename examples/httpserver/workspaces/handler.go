package workspaces

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown"
)

// maxBody bounds a request body; a workspace is one optional field.
const maxBody = 1 << 16

type api struct{ cfg Config }

// createRequest is the body of POST /workspaces.
type createRequest struct {
	ParentID string `json:"parent_id"`
}

// Held is an instance a deleted workspace still holds.
type Held struct {
	ID         string `json:"id"`
	InstanceID string `json:"instance_id"`
	Error      string `json:"error"`
}

// DeleteFailure is the body of a DELETE that could not stop every instance.
type DeleteFailure struct {
	Error string `json:"error"`
	// Pending names every row of the tree still holding an instance.
	Pending []Held `json:"pending"`
	// Retry says what the client may do: the request is safe to repeat.
	Retry string `json:"retry"`
}

// DeleteAccepted is the body of a 202: every instance of the tree is
// stopped, and what some of them own (volumes, Elastic IPs...) is not
// finished yet. Their rows keep their instances until it is; the sweeper
// finishes them.
type DeleteAccepted struct {
	// Finishing names the rows whose instance's dependents are not done.
	Finishing []Held `json:"finishing"`
	Note      string `json:"note"`
}

// EventJSON is one event as GET /events shows it.
type EventJSON struct {
	ID      int64          `json:"id"`
	Type    string         `json:"type"`
	Subject string         `json:"subject"`
	Payload map[string]any `json:"payload,omitempty"`
	At      string         `json:"at"`
}

// EventList is the body of GET /events.
type EventList struct {
	Events []EventJSON `json:"events"`
	// Next, when set, is the query value of before= for the next page.
	Next string `json:"next,omitempty"`
}

// GET /events pages: limit defaults to DefaultEventsLimit and may not
// exceed MaxEventsLimit.
const (
	DefaultEventsLimit = 100
	MaxEventsLimit     = 1000
)

// create writes the row first, then launches the instance tagged with the
// row's id, then records the instance on the row. Because the row comes
// first, the sweeper always finds a live row for an instance being
// provisioned and leaves it alone. The flip side: a process that crashes
// between the launch and the record leaves the row provisioning; its
// instance is protected only for the sweeper's RowGone.ProvisionTimeout,
// and a DELETE of the row has the sweeper terminate it. A record that
// fails (a database restart) is retried until the launch timeout.
func (a *api) create(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.ParentID != "" {
		id, ok := ParseID(req.ParentID)
		if !ok {
			writeError(w, http.StatusBadRequest, "parent_id is not a workspace id (a UUID)")
			return
		}
		req.ParentID = id
	}
	// The launch and the record must finish even if the client hangs up:
	// an instance launched but never recorded is exactly what leaks.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), a.cfg.LaunchTimeout)
	defer cancel()

	ws, err := a.cfg.Rows.Insert(ctx, a.cfg.NewID(), req.ParentID)
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "parent workspace not found")
		return
	case errors.Is(err, ErrParentRemoved):
		writeError(w, http.StatusConflict, "parent workspace is deleted")
		return
	case err != nil:
		a.cfg.Logger.Error("insert workspace", "err", err)
		writeError(w, http.StatusInternalServerError, "could not write the workspace")
		return
	}

	instanceID, err := a.launch(ctx, ws.ID)
	if err != nil {
		a.cfg.Logger.Error("launch instance", "workspace", ws.ID, "err", err)
		// Mark the row removed: if the launch did create an instance, it
		// is now explained by no live row and the sweeper reaps it.
		if _, aerr := a.cfg.Rows.Abandon(ctx, ws.ID); aerr != nil {
			a.cfg.Logger.Error("abandon workspace", "workspace", ws.ID, "err", aerr)
		}
		writeJSON(w, http.StatusBadGateway, map[string]string{
			"error": "could not launch the instance: " + err.Error(),
			"id":    ws.ID,
		})
		return
	}

	recorded, err := a.record(ctx, ws.ID, instanceID)
	if err != nil {
		a.unwind(ctx, w, ws.ID, instanceID, err)
		return
	}
	w.Header().Set("Location", "/workspaces/"+recorded.ID)
	writeJSON(w, http.StatusCreated, recorded)
}

// unwind handles a launched instance that could not be recorded on its
// row. The instance is stopped here only when no row can hold it: the
// workspace was deleted while it launched (an ancestor's DELETE), or the
// row was still provisioning and is now marked removed. If neither can be
// established (the record may have committed before its error), it is left
// alone: whatever the row says, the sweeper settles it.
func (a *api) unwind(ctx context.Context, w http.ResponseWriter, id, instanceID string, recordErr error) {
	// The record's retries may have spent the launch timeout: the unwind
	// gets a window of its own.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.DeleteTimeout)
	defer cancel()
	status, msg := http.StatusConflict, "workspace was deleted while it launched"
	if !errors.Is(recordErr, ErrNotProvisioning) {
		a.cfg.Logger.Error("record instance", "workspace", id, "instance", instanceID, "err", recordErr)
		status, msg = http.StatusInternalServerError, "instance launched but not recorded"
		abandoned, err := a.cfg.Rows.Abandon(ctx, id)
		if err != nil || !abandoned {
			// The row is still provisioning (or the record committed after
			// all): the instance runs until the row is deleted, or until the
			// sweeper's provisioning timeout has passed with row-gone reaping on.
			writeJSON(w, status, map[string]string{
				"error": msg + "; the instance is running: DELETE the workspace to have it terminated " +
					"(the sweeper terminates an instance whose workspace is deleted)",
				"id": id, "instance_id": instanceID,
			})
			return
		}
	}
	if err := teardown.StopWithRetry(events.WithResource(ctx, instanceID, id), a.cfg.Stopper, instanceID, a.cfg.Retry...); err != nil {
		msg += "; its instance is left to the sweeper"
	} else {
		msg += "; its instance was terminated"
	}
	writeJSON(w, status, map[string]string{"error": msg, "id": id, "instance_id": instanceID})
}

// record writes instanceID on the row, retrying a failure that may be
// passing (a dropped connection, a database restart) with backoff until ctx
// ends: a launched instance left unrecorded is the leak this API exists to
// prevent. A row that is gone or no longer provisioning is final, unless
// it holds this very instance: an earlier attempt committed and only its
// answer was lost, and the workspace is created.
func (a *api) record(ctx context.Context, id, instanceID string) (Workspace, error) {
	delay := 20 * time.Millisecond
	for {
		ws, err := a.cfg.Rows.Record(ctx, id, instanceID)
		if errors.Is(err, ErrNotProvisioning) {
			// Read the row before anyone stops the instance: terminating it
			// now would take a live workspace's instance.
			switch held, gerr := a.cfg.Rows.Get(ctx, id); {
			case gerr == nil && held.InstanceID == instanceID && held.Status != StatusRemoved:
				return held, nil
			case gerr != nil && !errors.Is(gerr, ErrNotFound):
				return Workspace{}, fmt.Errorf("record: the row may hold the instance: %w", gerr)
			}
		}
		if err == nil || errors.Is(err, ErrNotProvisioning) || errors.Is(err, ErrNotFound) {
			return ws, err
		}
		a.cfg.Logger.Warn("record instance: retrying", "workspace", id, "instance", instanceID, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return Workspace{}, err
		case <-t.C:
		}
		delay = min(2*delay, time.Second)
	}
}

// launch starts one instance for the row id. The row id is the
// ClientToken, so a retried launch returns the same instance.
func (a *api) launch(ctx context.Context, id string) (string, error) {
	tags := make([]types.Tag, 0, len(a.cfg.Owner)+1)
	for k, v := range a.cfg.Owner {
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	tags = append(tags, types.Tag{Key: aws.String(a.cfg.ResourceTag), Value: aws.String(id)})
	out, err := a.cfg.EC2.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId:      aws.String(a.cfg.ImageID),
		InstanceType: types.InstanceType(a.cfg.InstanceType),
		MinCount:     aws.Int32(1),
		MaxCount:     aws.Int32(1),
		ClientToken:  aws.String(id),
		TagSpecifications: []types.TagSpecification{{
			ResourceType: types.ResourceTypeInstance,
			Tags:         tags,
		}},
	})
	if err != nil {
		return "", err
	}
	if len(out.Instances) != 1 || aws.ToString(out.Instances[0].InstanceId) == "" {
		return "", fmt.Errorf("workspaces: RunInstances returned %d instances", len(out.Instances))
	}
	return aws.ToString(out.Instances[0].InstanceId), nil
}

func (a *api) get(w http.ResponseWriter, r *http.Request) {
	id, ok := ParseID(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusBadRequest, "id is not a workspace id (a UUID)")
		return
	}
	ws, err := a.cfg.Rows.Get(r.Context(), id)
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "workspace not found")
	case err != nil:
		a.cfg.Logger.Error("read workspace", "workspace", id, "err", err)
		writeError(w, http.StatusInternalServerError, "could not read the workspace")
	default:
		writeJSON(w, http.StatusOK, ws)
	}
}

// remove marks the tree removed, stops every instance it still holds (the
// ones an earlier DELETE failed to stop included), and clears each row
// whose instance is stopped. Repeating it is always safe: it re-drives
// whatever is still held and never answers 410.
func (a *api) remove(w http.ResponseWriter, r *http.Request) {
	id, ok := ParseID(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusBadRequest, "id is not a workspace id (a UUID)")
		return
	}
	// Detached: a client that hangs up must not cancel the stops (and the
	// event that records a give-up must not ride on a dead context).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), a.cfg.DeleteTimeout)
	defer cancel()

	held, err := a.cfg.Store.RemoveTree(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "workspace not found")
		return
	case err != nil:
		a.cfg.Logger.Error("remove tree", "workspace", id, "err", err)
		writeError(w, http.StatusInternalServerError, "could not remove the workspace; safe to retry")
		return
	}
	pending, finishing := a.stopHeld(ctx, held)
	switch {
	case len(pending) == 0 && len(finishing) == 0:
		w.WriteHeader(http.StatusNoContent)
		return
	case len(pending) == 0:
		writeJSON(w, http.StatusAccepted, DeleteAccepted{
			Finishing: finishing,
			Note:      "every instance is stopped; what they own is finished once EC2 has freed it, by the sweeper or a repeated DELETE",
		})
		return
	}
	writeJSON(w, http.StatusInternalServerError, DeleteFailure{
		Error:   fmt.Sprintf("%d of %d instances could not be stopped", len(pending), len(held)),
		Pending: append(pending, finishing...),
		Retry:   "safe to retry: DELETE again re-drives every instance still held; the sweeper also keeps trying",
	})
}

// stopHeld stops the held instances and clears each row whose instance
// stopped. It returns the rows still holding an instance: those whose
// stop failed, and apart, those whose stop was accepted and is not
// finished (teardown.ErrPending), which keep their instance until it is.
func (a *api) stopHeld(ctx context.Context, held []store.Pending) (pending, finishing []Held) {
	ids := make([]string, 0, len(held))
	seen := make(map[string]bool, len(held))
	for _, p := range held {
		if !seen[p.InstanceID] {
			seen[p.InstanceID] = true
			ids = append(ids, p.InstanceID)
		}
	}
	// Each give-up is recorded against its workspace.
	for _, p := range held {
		ctx = events.WithResource(ctx, p.InstanceID, p.ResourceID)
	}
	results := teardown.StopAll(ctx, a.cfg.Stopper, ids, a.cfg.Retry...)

	for _, p := range held {
		err := results[p.InstanceID]
		if teardown.IsPending(err) {
			finishing = append(finishing, Held{ID: p.ResourceID, InstanceID: p.InstanceID, Error: err.Error()})
			continue
		}
		if err != nil && !errors.Is(err, teardown.ErrGone) {
			a.cfg.Logger.Warn("stop failed", "workspace", p.ResourceID, "instance", p.InstanceID, "err", err)
			pending = append(pending, Held{ID: p.ResourceID, InstanceID: p.InstanceID, Error: err.Error()})
			continue
		}
		// false means the row changed meanwhile: it no longer holds this
		// instance, so there is nothing left to clear.
		if _, err := a.cfg.Store.Reaped(ctx, p); err != nil {
			a.cfg.Logger.Error("clear row", "workspace", p.ResourceID, "instance", p.InstanceID, "err", err)
			pending = append(pending, Held{ID: p.ResourceID, InstanceID: p.InstanceID,
				Error: "instance stopped but the row was not cleared: " + err.Error()})
		}
	}
	return pending, finishing
}

func (a *api) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := events.Filter{Type: q.Get("type"), Subject: q.Get("subject"), Limit: DefaultEventsLimit}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxEventsLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be an integer from 1 to %d", MaxEventsLimit))
			return
		}
		f.Limit = n
	}
	if s := q.Get("before"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "before must be the next value of an earlier page")
			return
		}
		f.Before = n
	}
	list, err := a.cfg.Ledger.List(r.Context(), f)
	switch {
	case errors.Is(err, events.ErrFilter):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		a.cfg.Logger.Error("list events", "err", err)
		writeError(w, http.StatusInternalServerError, "could not list events")
		return
	}
	out := EventList{Events: make([]EventJSON, len(list))}
	for i, e := range list {
		out.Events[i] = EventJSON{ID: e.ID, Type: e.Type, Subject: e.Subject, Payload: e.Payload, At: e.At.UTC().Format("2006-01-02T15:04:05.000Z07:00")}
	}
	if len(list) == f.Limit && list[len(list)-1].ID > 0 {
		out.Next = strconv.FormatInt(list[len(list)-1].ID, 10)
	}
	writeJSON(w, http.StatusOK, out)
}

// decodeBody reads at most one JSON object into v. An empty body is an
// empty object; unknown fields and trailing data are errors.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return errors.New("request body too large or unreadable")
	}
	if strings.TrimSpace(string(body)) == "" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed JSON body: %v", err)
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		return errors.New("malformed JSON body: trailing data")
	}
	return nil
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
