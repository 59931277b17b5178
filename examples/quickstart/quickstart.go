package quickstart

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/sweeper"
	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
)

// Owner is the tag that marks this deployment's instances. Every launch
// carries it; the sweeper never lists an instance without it.
var Owner = map[string]string{"team": "workspaces"}

// Service is the host's service, with what leakless adds.
type Service struct {
	DB *pgxpool.Pool

	ec2    *awsec2.Client   // stops and lists instances; wraps the host's *ec2.Client
	store  *store.Postgres  // leakless's view of the host's workspaces table
	events *events.Postgres // the durable leak ledger
}

// New wires leakless into the service. Migrate creates leakless's own
// tables and the partial index on the host's table; a host that runs its
// own migration tool applies SchemaSQL() from each instead.
func New(ctx context.Context, db *pgxpool.Pool, client *ec2.Client) (*Service, error) {
	cloud, err := awsec2.New(client, awsec2.WithOwner(Owner))
	if err != nil {
		return nil, err
	}
	st, err := store.NewPgx(db, store.Table{
		Name: "workspaces", ID: "id", Status: "status", InstanceID: "instance_id",
		Parent: "parent_id", Removed: "removed",
	})
	if err != nil {
		return nil, err
	}
	sink, err := events.NewPgx(db)
	if err != nil {
		return nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		return nil, err
	}
	if err := sink.Migrate(ctx); err != nil {
		return nil, err
	}
	return &Service{DB: db, ec2: cloud, store: st, events: sink}, nil
}

// DeleteWorkspace is the host's DELETE /workspaces/{id} handler.
func (s *Service) DeleteWorkspace(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")

	// The host's own delete, unchanged: the row keeps its instance_id, so a
	// repeated DELETE finds the instance again.
	var instanceID string
	err := s.DB.QueryRow(ctx,
		`UPDATE workspaces SET status = 'removed' WHERE id = $1 RETURNING coalesce(instance_id, '')`,
		id).Scan(&instanceID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		http.Error(w, "no such workspace", http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, "could not delete the workspace", http.StatusInternalServerError)
		return
	}

	if instanceID != "" {
		// The sweeper leaves this row to us for the store's redrive grace.
		p := store.Pending{ResourceID: id, InstanceID: instanceID}
		if err := s.store.Stopping(ctx, p); err != nil {
			http.Error(w, "could not delete the workspace; the request is safe to retry", http.StatusInternalServerError)
			return
		}
		// A give-up is recorded against the workspace, not the instance.
		ctx := events.WithResource(ctx, instanceID, id)
		// Was: one TerminateInstances call, its error logged and dropped.
		err := teardown.StopWithRetry(ctx, s.ec2, instanceID,
			teardown.WithMaxAttempts(5),
			teardown.WithBackoff(200*time.Millisecond, 5*time.Second),
			teardown.WithOnExhausted(events.Exhausted(s.events, events.TypeRetryExhausted)))
		if err != nil {
			// The event is in structure_events; the sweeper keeps trying.
			http.Error(w, "the instance is still running; the request is safe to retry", http.StatusInternalServerError)
			return
		}
		// Clear instance_id only if the row still holds this instance.
		if _, err := s.store.Reaped(ctx, p); err != nil {
			http.Error(w, "the instance is stopped but the row is not cleared; the request is safe to retry", http.StatusInternalServerError)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// Sweeper returns the backstop for whatever the handler could not finish.
// Run it in a worker, or beside the server, with Run(ctx); replicas share
// the lease, so only one sweeps at a time. opts are applied last.
func (s *Service) Sweeper(opts ...sweeper.Option) (*sweeper.Sweeper, error) {
	return sweeper.New(s.store, s.ec2, append([]sweeper.Option{
		sweeper.WithEvents(s.events),
		sweeper.WithLeader(s.store.Lease("leakless-sweeper", 30*time.Second)),
		// MinAge must exceed the longest time between launching an
		// instance and recording it on its row.
		sweeper.WithRowGone(s.ec2, sweeper.RowGone{MinAge: 15 * time.Minute}),
	}, opts...)...)
}
