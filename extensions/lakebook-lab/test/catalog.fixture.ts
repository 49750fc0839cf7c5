import { ICatalog } from '../src/model';

/** A catalog response shaped like the server's `GET /lakebook/api/catalog`. */
export function sampleCatalog(): ICatalog {
  return {
    workspace: '/home/ada/flights',
    generated_at: '2024-05-01T12:00:00+00:00',
    zones: [
      {
        name: 'raw',
        tables: [
          {
            name: 'raw.flights',
            zone: 'raw',
            table: 'flights',
            description: 'Every flight event as ingested.',
            owner: 'data-eng',
            row_count: 336776,
            bytes: 12_582_912,
            last_event_time: '2024-05-01T11:50:00+00:00',
            last_updated: '2024-05-01T11:57:00+00:00',
            columns: [
              {
                name: 'carrier',
                type: 'string',
                description: 'Two-letter airline code',
                nullable: false,
                pii: false
              },
              {
                name: 'passenger_email',
                type: 'string',
                description: 'Contact address of the booking',
                nullable: true,
                pii: true
              }
            ],
            lineage: { upstream: [], downstream: ['warehouse.daily_delays'] }
          },
          {
            name: 'raw.weather',
            zone: 'raw',
            table: 'weather',
            description: 'Hourly METAR observations.',
            owner: null,
            row_count: null,
            bytes: null,
            last_event_time: null,
            last_updated: null,
            columns: [
              {
                name: 'temp',
                type: 'double',
                description: 'Temperature in Fahrenheit',
                nullable: true,
                pii: false
              }
            ],
            lineage: { upstream: [], downstream: [] }
          }
        ]
      },
      {
        name: 'warehouse',
        tables: [
          {
            name: 'warehouse.daily_delays',
            zone: 'warehouse',
            table: 'daily_delays',
            description: 'Mean departure delay per carrier and day.',
            owner: 'analytics',
            row_count: 1,
            bytes: 900,
            last_event_time: '2024-04-30T00:00:00+00:00',
            last_updated: null,
            columns: [
              {
                name: 'carrier',
                type: 'string',
                description: '',
                nullable: false,
                pii: false
              },
              {
                name: 'mean_dep_delay',
                type: 'double',
                description: 'Minutes',
                nullable: true,
                pii: false
              }
            ],
            lineage: { upstream: ['raw.flights'], downstream: [] }
          }
        ]
      },
      { name: 'features', tables: [] }
    ]
  };
}
