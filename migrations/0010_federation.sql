CREATE TABLE `fed_alarms` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`peer_id` integer NOT NULL,
	`kind` text NOT NULL,
	`detail` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`cleared_at` text,
	FOREIGN KEY (`peer_id`) REFERENCES `fed_peers`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `fed_alarms_peer` ON `fed_alarms` (`peer_id`,`cleared_at`);--> statement-breakpoint
CREATE TABLE `fed_peers` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`url` text NOT NULL,
	`name` text DEFAULT '' NOT NULL,
	`state` text DEFAULT 'pending' NOT NULL,
	`pinned_kid` text,
	`pinned_jwk` text,
	`previous_keys` text,
	`seen_kid` text NOT NULL,
	`seen_jwk` text NOT NULL,
	`document` text NOT NULL,
	`document_jws` text NOT NULL,
	`fetched_at` text NOT NULL,
	`last_error` text DEFAULT '' NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `fed_peers_url_unique` ON `fed_peers` (`url`);--> statement-breakpoint
CREATE TABLE `fed_reports` (
	`peer_id` integer NOT NULL,
	`month` text NOT NULL,
	`jws` text NOT NULL,
	`fetched_at` text NOT NULL,
	PRIMARY KEY(`peer_id`, `month`),
	FOREIGN KEY (`peer_id`) REFERENCES `fed_peers`(`id`) ON UPDATE no action ON DELETE cascade
);
