// Sees only INSERT records: the event source mapping's filter drops the others before invoking.
export const handler = async (event) => {
  for (const record of event.Records) {
    console.log(JSON.stringify({
      action: 'new-order',
      eventName: record.eventName,
      id: record.dynamodb.Keys.id.S,
    }));
  }
};
